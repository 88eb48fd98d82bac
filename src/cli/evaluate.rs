//! `reco evaluate`: offline quality of every model on MovieLens files, a train/test file pair, or
//! the data in the configured database (see `eval` for the protocol).

use std::path::PathBuf;

use crate::config::Config;
use crate::data::{Dataset, implicit, movielens};
use crate::db::Pool;
use crate::eval::{self, EvalData};
use crate::metrics::Metrics;
use crate::policy::FeedbackPolicy;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub source: Source,
    /// Print one JSON document instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Models to evaluate, comma-separated (default: all).
    #[arg(long, global = true, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Worker threads for fitting and scoring (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// How the positives of `movielens` and `store` divide 80/20 into training and test data:
    /// per user by time (`temporal`), per user at random (`random`, with `--seed`), or one time
    /// cut for everyone (`global-time`: users with no positive before it are evaluated too, the
    /// cold-start case). `files` are split already.
    #[arg(long, global = true, value_enum, default_value_t = SplitKind::Temporal)]
    pub split: SplitKind,
    /// How the validation split (what every setting is chosen on) is carved from the training
    /// part. Default: the shape of the test split: `--split` for `movielens` and `store`; for
    /// `files`, the shape their timestamps show (printed).
    #[arg(long, global = true, value_enum)]
    pub validation: Option<SplitKind>,
    /// The seed of `--split random` (and of a random validation split).
    #[arg(long, global = true, default_value_t = 1)]
    pub seed: u64,
    /// Seconds the search for each model's settings may take, in predicted time (the same on a
    /// busy machine), on a validation split carved from the training part the same way the test
    /// split was (the server's `recommend.tuning_budget`).
    #[arg(long, global = true, default_value_t = eval::DEFAULT_BUDGET.as_secs_f64())]
    pub tuning_budget: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitKind {
    Temporal,
    Random,
    GlobalTime,
}

impl Opts {
    /// The split asked for; a given train/test pair takes none but the default.
    fn split(&self) -> anyhow::Result<eval::Split> {
        if matches!(self.source, Source::Files { .. }) && self.split != SplitKind::Temporal {
            anyhow::bail!("--split applies to movielens and store: files are split already");
        }
        Ok(self.split.with_seed(self.seed))
    }
}

impl SplitKind {
    fn with_seed(self, seed: u64) -> eval::Split {
        match self {
            SplitKind::Temporal => eval::Split::Temporal,
            SplitKind::Random => eval::Split::Random { seed },
            SplitKind::GlobalTime => eval::Split::GlobalTime,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Source {
    /// MovieLens 100K folder: ratings >= recommend.rating_threshold (4) are positives, split by
    /// `--split` (default: per user by time, 80/20).
    Movielens { dir: PathBuf },
    /// A given split: tab-separated `user item rating timestamp` files; ratings >=
    /// recommend.rating_threshold (4) are positives.
    Files { train: PathBuf, test: PathBuf },
    /// A generated implicit-feedback world shaped like a news feed (`data::implicit`): views,
    /// likes and purchases (each positive under the default policy), items published over time
    /// that fade, drifting tastes, many users with 1-3 events; split by `--split`.
    World {
        /// Items in the catalogue.
        #[arg(long, default_value_t = implicit::Spec::default().items)]
        items: usize,
        /// Users.
        #[arg(long, default_value_t = implicit::Spec::default().users)]
        users: usize,
        /// The world's seed (`--seed` is the split's).
        #[arg(long, default_value_t = implicit::Spec::default().seed)]
        world_seed: u64,
    },
    /// The configured database: positive feedback (the server's rule: types in
    /// recommend.positive_weights, ratings >= recommend.rating_threshold) is positive; split by
    /// `--split`.
    Store,
}

pub async fn run(opts: Opts, config: Config) -> anyhow::Result<()> {
    // One definition of a positive, the server's (`crate::policy`), for every source.
    let policy = FeedbackPolicy::from_config(&config.recommend);
    let positive = |f: &crate::store::Feedback| policy.is_positive(&f.feedback_type, f.value);
    let split = opts.split()?;
    let validation = opts.validation.map(|v| v.with_seed(opts.seed));
    // What the report says of the split and of the validation carved like it.
    let mut about = format!("split: {split}, 80% of positives train");
    let mut data: EvalData = match &opts.source {
        Source::Movielens { dir } => {
            let ds = movielens::load(dir)?;
            eval::from_dataset(&ds.items, &ds.feedback, positive, 0.8, split)
        }
        Source::Files { train, test } => {
            let threshold = config.recommend.rating_threshold;
            let (data, shape) = eval::from_files(train, test, threshold)?;
            about = format!(
                "split: given; its timestamps show {} ({})",
                shape.split, shape.why
            );
            data
        }
        Source::World {
            items,
            users,
            world_seed,
        } => {
            let spec = implicit::Spec {
                items: *items,
                users: *users,
                seed: *world_seed,
                ..Default::default()
            };
            if !(1..=1_000_000).contains(&spec.items) || !(1..=10_000_000).contains(&spec.users) {
                anyhow::bail!("--items must be 1..=1000000 and --users 1..=10000000");
            }
            let ds = implicit::generate(spec);
            about = format!(
                "world: {} items, {} users, {} events (seed {world_seed}); {about}",
                ds.items.len(),
                ds.users.len(),
                ds.feedback.len()
            );
            eval::from_dataset(&ds.items, &ds.feedback, positive, 0.8, split)
        }
        Source::Store => {
            let pool = Pool::open(&config.db, Metrics::new().pool).await?;
            let ds = Dataset::load(&Store::new(pool.clone())).await?;
            pool.close().await;
            eval::from_dataset(&ds.items, &ds.feedback, positive, 0.8, split)
        }
    };
    if let Some(v) = validation {
        data.validation = v;
    }
    about.push_str(&format!("\nvalidation: {}", data.validation));
    if validation.is_some() {
        about.push_str(" (--validation)");
    } else {
        about.push_str(", shaped like the test split");
    }
    let models: Vec<String> = if opts.models.is_empty() {
        eval::MODELS.iter().map(|m| m.to_string()).collect()
    } else {
        opts.models.clone()
    };
    for m in &models {
        if !eval::MODELS.contains(&m.as_str()) {
            anyhow::bail!("unknown model {m:?}; known: {}", eval::MODELS.join(", "));
        }
    }
    if !(opts.tuning_budget.is_finite() && (0.0..=3600.0).contains(&opts.tuning_budget)) {
        anyhow::bail!("--tuning-budget must be 0..=3600 seconds");
    }
    let budget = std::time::Duration::from_secs_f64(opts.tuning_budget);
    let threads = opts.threads.unwrap_or(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let reports = tokio::task::spawn_blocking(move || {
        let names: Vec<&str> = models.iter().map(String::as_str).collect();
        pool.install(|| eval::run(&data, &names, 10, budget))
    })
    .await?;
    if opts.json {
        // The JSON document alone on standard output; what was inferred goes to the log stream.
        eprintln!("{about}");
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        println!("{about}");
        print!("{}", eval::table(&reports));
    }
    Ok(())
}
