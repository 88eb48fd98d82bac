//! The dashboard page in a real browser: headless Chromium (Debian's `chromium`) loads
//! `/dashboard?user=…&item=…` from a running server under real traffic, runs its script, and the
//! test reads the DOM it produced: every chart has drawn points under a labelled time axis, the
//! experiment shows impressions, clicks and a click-through interval, the training run lists its
//! validation scores, and the user and item panels show history, every engine's list and similar
//! items by title. A screenshot is written to `target/dashboard.png` (not tracked by git) for a
//! person to look at.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{Backend, spawn_app_with};
use crate::servers::have;

/// The text between `start` and the next `end` in `text`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in:\n{text}"))
        + start.len();
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

fn points(dom: &str, id: &str) -> usize {
    let marker = format!("id=\"{id}\" data-points=\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no canvas {id} in:\n{dom}"))
        + marker.len();
    dom[start..].split('"').next().unwrap().parse().unwrap()
}

/// Traffic while the page polls: every engine, `auto` (impressions), and a like on the first item
/// `auto` showed (a click) plus a view (feedback events).
fn traffic(app: &crate::helpers::TestApp) -> tokio::task::JoinHandle<()> {
    let client = app.client.clone();
    let base = app.url("");
    tokio::spawn(async move {
        for round in 0..400 {
            let user = format!("user-{}", round % 50 + 1);
            for engine in ["fast", "quality", "enhanced", "smart", "auto"] {
                let answer = client
                    .get(format!("{base}/api/recommend/{user}?engine={engine}"))
                    .send()
                    .await;
                let Ok(answer) = answer else { continue };
                let body: serde_json::Value = answer.json().await.unwrap_or_default();
                if engine == "auto"
                    && let Some(first) = body["items"][0]["id"].as_str()
                {
                    let rows = serde_json::json!([
                        {"user_id": user, "item_id": first, "type": "like"},
                        {"user_id": user, "item_id": format!("item-{}", round % 3000 + 1), "type": "view"},
                    ]);
                    let _ = client
                        .post(format!("{base}/api/feedback"))
                        .json(&rows)
                        .send()
                        .await;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
}

/// Every chart drew points under a time axis labelled with clock times.
fn check_charts(dom: &str) {
    for chart in [
        "pool", "waiting", "acquire", "rate", "p50", "p99", "feedback",
    ] {
        assert!(points(dom, chart) >= 2, "chart {chart} has no data:\n{dom}");
        // The time axis is labelled with clock times.
        let axis = between(dom, &format!("id=\"{chart}-axis\">"), "</div>");
        assert_eq!(axis.matches("<span>").count(), 4, "{chart} axis: {axis}");
        assert!(axis.contains(':'), "{chart} axis: {axis}");
    }
}

/// The experiment, training, user and item panels show their data.
fn check_panels(dom: &str) {
    // The experiment: impressions, clicks, a rate and its interval.
    let experiments = between(dom, "id=\"experiments\">", "</tbody>");
    let cells: Vec<&str> = experiments
        .split("<td>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap())
        .collect();
    assert_eq!(cells[0], "default", "{experiments}");
    let impressions: u64 = cells[3].parse().unwrap();
    let clicks: u64 = cells[4].parse().unwrap();
    assert!(impressions > 0 && clicks > 0, "{experiments}");
    assert!(
        cells[5].ends_with('%') && cells[6].starts_with('['),
        "{experiments}"
    );
    // The training run with its validation scores.
    let runs = between(dom, "id=\"runs\">", "</tbody>");
    assert!(
        runs.contains("<td>ok</td>"),
        "no training run listed:\n{dom}"
    );
    assert!(
        runs.contains("itemknn 0.") || runs.contains("als 0."),
        "no validation score: {runs}"
    );
    // Look at a user: their history by title, and every engine's list with reasons.
    let history = between(dom, "id=\"user-history\">", "</tbody>");
    assert!(history.matches("<tr>").count() >= 3, "{history}");
    assert!(history.contains(" of "), "history by title: {history}");
    let lists = between(dom, "id=\"user-lists\">", "</section>");
    for engine in ["fast", "quality", "enhanced", "smart", "popularity"] {
        let list = between(lists, &format!("data-engine=\"{engine}\">"), "</ol>");
        assert!(list.matches("<li ").count() >= 5, "{engine}: {list}");
        assert!(list.contains("class=\"why\""), "{engine}: {list}");
    }
    // Look at an item: its similar items by title.
    let similar = between(dom, "id=\"item-similar\">", "</ol>");
    assert!(similar.matches("<li ").count() >= 5, "{similar}");
    assert!(
        !similar.contains("item-5\""),
        "not the item itself: {similar}"
    );
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
        // A budget, so that the run scores its settings on validation for the training table.
        c.recommend.tuning_budget = 5.0;
    })
    .await;
    app.train().await;
    let traffic = traffic(&app);
    let page = app.url("/dashboard?user=user-3&item=item-5");
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
    check_charts(&dom);
    check_panels(&dom);
    // Legends name the engines that were charted; the training run is listed with its version.
    for engine in ["fast", "quality", "enhanced", "smart"] {
        assert!(
            dom.contains(&format!("</i>{engine}</span>")),
            "legend lacks {engine}"
        );
    }
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
