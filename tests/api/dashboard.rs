//! The dashboard page in a real browser: headless Chromium (Debian's `chromium`) loads
//! `/dashboard` from a running server, runs its script, and the test reads the DOM it produced:
//! every chart must have drawn points, and the training runs must be listed. A screenshot is
//! written to `target/dashboard.png` (not tracked by git) for a person to look at.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{Backend, spawn_app_with};
use crate::servers::have;

fn points(dom: &str, id: &str) -> usize {
    let marker = format!("id=\"{id}\" data-points=\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no canvas {id} in:\n{dom}"))
        + marker.len();
    dom[start..].split('"').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_live_data_in_a_browser() {
    if !have("chromium") {
        eprintln!("notice: chromium not found; skipping (./scripts/test.sh installs it)");
        return;
    }
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.demo.seed_if_empty = true;
        c.recommend.train_interval = 3600.0;
    })
    .await;
    app.train().await;
    // Traffic for the engine charts while the page polls.
    let client = app.client.clone();
    let base = app.url("");
    let traffic = tokio::spawn(async move {
        for round in 0..200 {
            for engine in ["fast", "quality", "enhanced", "smart"] {
                let _ = client
                    .get(format!(
                        "{base}/api/recommend/user-{}?engine={engine}",
                        round % 50 + 1
                    ))
                    .send()
                    .await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let page = app.url("/dashboard");
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    let (dom, shot_ok) = tokio::task::spawn_blocking(move || {
        let browser = |extra: &[&str]| {
            Command::new("chromium")
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                ])
                .args(["--window-size=1280,900", "--virtual-time-budget=6000"])
                .args(extra)
                .arg(&page)
                .output()
                .expect("run chromium")
        };
        let dom = String::from_utf8_lossy(&browser(&["--dump-dom"]).stdout).into_owned();
        let shot_arg = format!("--screenshot={}", shot.display());
        let shot_ok = browser(&[&shot_arg]).status.success() && shot.exists();
        (dom, shot_ok)
    })
    .await
    .unwrap();
    traffic.abort();

    let samples: usize = dom
        .split("id=\"samples\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sample count in:\n{dom}"));
    assert!(samples >= 2, "the page polled {samples} times");
    for chart in ["pool", "waiting", "acquire", "rate", "latency"] {
        assert!(
            points(&dom, chart) >= 2,
            "chart {chart} has no data:\n{dom}"
        );
    }
    // Legends name the engines that were charted; the training run is listed with its version.
    for engine in ["fast", "quality", "enhanced", "smart"] {
        assert!(
            dom.contains(&format!("</i>{engine}</span>")),
            "legend lacks {engine}"
        );
    }
    assert!(
        dom.contains("<td>ok</td>"),
        "no training run listed:\n{dom}"
    );
    assert!(
        dom.contains("<div id=\"error\"></div>"),
        "the page reported an error:\n{dom}"
    );
    // Everything the page loads comes from reco itself.
    let html = app.client.get(app.url("/dashboard")).send().await.unwrap();
    assert_eq!(html.status(), 200);
    let body = html.text().await.unwrap();
    assert!(
        !body.contains("http://") && !body.contains("https://"),
        "external asset in the page"
    );
    assert!(shot_ok, "no screenshot written");
}
