//! `reco monitor`: live view (ratatui), `--once` (plain text) or `--json` of every replica's pool
//! and the database's connections.

use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use secrecy::ExposeSecret;

use super::connect;
use crate::config::{Config, seconds};
use crate::ops::monitor::{Level, Monitor, REPLICA_COLUMNS, View};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Print one plain-text snapshot and exit.
    #[arg(long)]
    once: bool,
    /// Print one JSON document and exit.
    #[arg(long, conflicts_with = "once")]
    json: bool,
    /// A replica's base URL (repeatable); adds to `monitor.replicas`.
    #[arg(long = "replica")]
    replicas: Vec<String>,
    /// Do not connect to the database (replicas only).
    #[arg(long)]
    no_database: bool,
}

pub async fn run(opts: Opts, config: Config) -> anyhow::Result<()> {
    let store = if opts.no_database {
        None
    } else {
        Some(connect::inspector(&config, "monitor").await?)
    };
    let replicas = connect::replica_urls(&config, &opts.replicas, store.as_ref()).await;
    let api_key = config
        .http
        .api_key
        .as_ref()
        .map(|k| k.expose_secret().to_string());
    let monitor = Monitor::new(config.monitor.clone(), replicas, api_key, store);
    if opts.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&monitor.observe().await)?
        );
        return Ok(());
    }
    if opts.once {
        print!(
            "{}",
            crate::ops::monitor::render_text(&monitor.observe().await)
        );
        return Ok(());
    }
    live(&monitor, seconds(config.monitor.interval)).await
}

/// Redraws every `interval` until `q` or Esc.
async fn live(monitor: &Monitor, interval: Duration) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let result = async {
        loop {
            let view = monitor.observe().await;
            terminal.draw(|frame| draw(frame, &view))?;
            let quit = tokio::task::block_in_place(|| -> std::io::Result<bool> {
                if event::poll(interval)?
                    && let Event::Key(key) = event::read()?
                {
                    return Ok(matches!(key.code, KeyCode::Char('q') | KeyCode::Esc));
                }
                Ok(false)
            })?;
            if quit {
                return Ok::<_, anyhow::Error>(());
            }
        }
    }
    .await;
    ratatui::restore();
    result
}

fn draw(frame: &mut ratatui::Frame, view: &View) {
    let backends = view.server.as_ref().map_or(0, |s| s.backends.len());
    let [header, replicas, database, warnings] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(view.replicas.len() as u16 + 3),
        Constraint::Length(backends as u16 + 3),
        Constraint::Min(3),
    ])
    .areas(frame.area());
    frame.render_widget(
        Line::from(format!(
            "reco monitor  {}  (q to quit)",
            view.taken_at.format("%H:%M:%S")
        ))
        .bold(),
        header,
    );
    let rows = view.replicas.iter().map(|r| match &r.pool {
        Some(p) => Row::new(std::iter::once(r.url.clone()).chain(p.cells())),
        None => Row::new(vec![format!(
            "{} ({})",
            r.url,
            r.error.as_deref().unwrap_or("no answer")
        )])
        .style(Style::new().fg(Color::Red)),
    });
    let mut widths = REPLICA_COLUMNS.map(|(_, w)| Constraint::Length(w as u16));
    // The URL column takes what the terminal leaves.
    widths[0] = Constraint::Min(24);
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(REPLICA_COLUMNS.map(|(name, _)| name)).bold())
            .block(Block::bordered().title("pools")),
        replicas,
    );
    let (title, rows): (String, Vec<Row>) = match (&view.server, &view.server_error) {
        (Some(s), _) => (
            format!(
                "database: max_connections {}, reserved {}, {} client backends ({:.0}%)",
                s.max_connections, s.reserved_connections, s.total, s.utilisation_percent
            ),
            s.backends
                .iter()
                .map(|b| {
                    Row::new(vec![
                        b.application.clone(),
                        b.state.clone(),
                        b.count.to_string(),
                        format!("{:.0}", b.oldest_state_seconds),
                    ])
                })
                .collect(),
        ),
        (None, e) => (
            format!("database: {}", e.as_deref().unwrap_or("not inspected")),
            Vec::new(),
        ),
    };
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(24),
                Constraint::Length(28),
                Constraint::Length(6),
                Constraint::Length(11),
            ],
        )
        .header(Row::new(["application", "state", "count", "oldest (s)"]).bold())
        .block(Block::bordered().title(title)),
        database,
    );
    let lines: Vec<Line> = if view.warnings.is_empty() {
        vec![Line::from("no warnings").fg(Color::Green)]
    } else {
        view.warnings
            .iter()
            .map(|w| match w.level {
                Level::Warn => Line::from(format!("WARN {}", w.message)).fg(Color::Yellow),
                Level::Fail => Line::from(format!("FAIL {}", w.message)).fg(Color::Red),
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title("warnings")),
        warnings,
    );
}
