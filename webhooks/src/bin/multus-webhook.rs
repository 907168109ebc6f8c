//! The admission webhook: parse the flags, set up logging and TLS, run.

use clap::Parser;
use multus_webhooks::args::{Args, init_tracing};

fn main() -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let args = Args::parse();
    init_tracing(args.log_format, &args.log);
    let runtime = args.runtime()?;
    runtime.block_on(args.run())?;
    Ok(())
}
