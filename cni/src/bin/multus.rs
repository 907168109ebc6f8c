//! `multus`: the CNI meta-plugin binary. The runtime runs it with the CNI environment and the
//! network configuration on stdin; everything happens in [`multus_cni::plugin`].

use std::io::Read;
use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let mut stdin = Vec::new();
    std::io::stdin().read_to_end(&mut stdin)?;
    let outcome = multus_cni::plugin::serve(stdin);
    multus_cni::plugin::print(&outcome)?;
    // A rotation of `logFile` in this call may still be gzipping the backup.
    multus_cni::logfile::wait_for_compression();
    Ok(if outcome.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
