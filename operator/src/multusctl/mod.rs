//! `multusctl`: the multus-rs rules, offline. It reads manifests and node CNI files, runs the very
//! rule functions the admission webhook and the controllers run (all in `multus-crds`), and says
//! what is wrong with each object, or what interfaces a pod will get.

pub mod explain;
pub mod input;
pub mod objects;
pub mod report;
pub mod validate;

use std::{io::Write, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::Error;

#[derive(Debug, Parser)]
#[command(
    name = "multusctl",
    version,
    about = "Check NetworkAttachmentDefinitions, pod network annotations, SR-IOV objects and CNI configs offline"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate manifests and CNI config files; exit 0 when all are valid, 1 when any is not,
    /// 2 on usage or I/O errors.
    Validate(ValidateArgs),
    /// Show the interfaces a pod will get, in order, given the NADs it references.
    Explain(ExplainArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Print the version.
    Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Options shared by `validate` and `explain`: how the cluster's Multus is configured.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Enforce Multus namespace isolation: pods may reference NADs only in their own namespace
    /// or a global one.
    #[arg(long, env = "MULTUS_NAMESPACE_ISOLATION")]
    pub namespace_isolation: bool,
    /// Namespaces whose NADs any pod may reference under isolation (Multus `globalNamespaces`;
    /// default: `default`).
    #[arg(long, env = "MULTUS_GLOBAL_NAMESPACES", value_delimiter = ',')]
    pub global_namespaces: Vec<String>,
    /// Multus' own namespace, where `v1.multus-cni.io/default-network` references are looked up.
    #[arg(long, env = "MULTUS_MULTUS_NAMESPACE", default_value = "kube-system")]
    pub multus_namespace: String,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or directories (searched recursively for .yaml, .yml, .json, .conf, .conflist);
    /// `-` reads standard input.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Report network references to NADs absent from the input as warnings, not errors (for
    /// repositories that hold workloads but not their NADs).
    #[arg(long, env = "MULTUS_IGNORE_MISSING_NETWORKS")]
    pub ignore_missing_networks: bool,
    /// Replace the built-in SR-IOV supported-NIC list with this file (one `vendor pfDevice
    /// vfDevice` entry per line, lower-case hex).
    #[arg(long, env = "MULTUS_SUPPORTED_NICS")]
    pub supported_nics: Option<PathBuf>,
    /// The SR-IOV operator's namespace (policies elsewhere are not used).
    #[arg(
        long,
        env = "MULTUS_OPERATOR_NAMESPACE",
        default_value = multus_crds::sriov::DEFAULT_OPERATOR_NAMESPACE
    )]
    pub operator_namespace: String,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The pod (or workload) manifests, and the NADs they reference; `-` reads standard input.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The cluster network's name as shown for eth0.
    #[arg(long, default_value = "cluster-network")]
    pub cluster_network: String,
    /// Multus `defaultNetworks`: attached to every pod outside the system namespaces, after eth0.
    #[arg(long, value_delimiter = ',')]
    pub default_networks: Vec<String>,
    /// Multus `systemNamespaces`: pods there do not get `defaultNetworks`.
    #[arg(long, value_delimiter = ',', default_value = "kube-system")]
    pub system_namespaces: Vec<String>,
}

/// What the process should exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked is valid.
    Valid,
    /// At least one object is invalid.
    Invalid,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Valid => 0,
            Outcome::Invalid => 1,
        }
    }
}

/// Run a parsed command line, writing to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<Outcome, Error> {
    match cli.command {
        Command::Validate(args) => validate::run(&args, out),
        Command::Explain(args) => explain::run(&args, out),
        Command::Crds => {
            let yaml =
                multus_crds::crdgen::all_yaml().map_err(|e| Error::GenerateCrds(e.to_string()))?;
            out.write_all(yaml.as_bytes()).map_err(Error::WriteOutput)?;
            Ok(Outcome::Valid)
        }
        Command::Version => {
            writeln!(out, "multusctl {}", env!("CARGO_PKG_VERSION")).map_err(Error::WriteOutput)?;
            Ok(Outcome::Valid)
        }
    }
}
