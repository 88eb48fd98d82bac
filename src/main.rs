fn main() -> anyhow::Result<()> {
    reco::cli::main()
}
