//! `reco config`: print the effective configuration with secrets redacted.

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Opts {}

pub fn run(_opts: &Opts, config: &Config) -> anyhow::Result<()> {
    print!("{}", config.redacted());
    Ok(())
}
