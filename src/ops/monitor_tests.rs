//! Tests of `reco monitor`'s view: its warnings and its text.

use super::*;

fn pool(in_use: u32, overflow: u32) -> ReplicaPool {
    ReplicaPool {
        ceiling: 15,
        size: in_use.max(5),
        idle: 0,
        in_use,
        overflow_in_use: overflow,
        waiting: 0,
        timeouts_total: 0,
        leak_suspects: Vec::new(),
        acquire_wait: AcquireWait { p99_seconds: 0.001 },
        feed: Some(Feed {
            position: 42,
            lag_seconds: 0.3,
        }),
    }
}

fn view(replicas: Vec<Replica>, total: i64) -> View {
    View {
        taken_at: chrono::Utc::now(),
        replicas,
        server: Some(Server {
            max_connections: 20,
            reserved_connections: 3,
            total,
            utilisation_percent: 100.0 * total as f64 / 17.0,
            backends: Vec::new(),
        }),
        server_error: None,
        warnings: Vec::new(),
    }
}

#[test]
fn warns_at_the_operators_thresholds() {
    let config = MonitorConfig::default();
    let calm = view(
        vec![Replica {
            url: "http://a".into(),
            pool: Some(pool(5, 0)),
            error: None,
        }],
        12,
    );
    assert_eq!(warnings(&config, &calm), []);
    let busy = view(
        vec![
            Replica {
                url: "http://a".into(),
                pool: Some(ReplicaPool {
                    feed: Some(Feed {
                        position: 40,
                        lag_seconds: 4.5,
                    }),
                    ..pool(13, 3)
                }),
                error: None,
            },
            Replica {
                url: "http://b".into(),
                pool: None,
                error: Some("unreachable".into()),
            },
        ],
        17,
    );
    let w = warnings(&config, &busy);
    let text: Vec<&str> = w.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        text,
        [
            "replica http://a: pool 87% in use (13 of 15), above 80%",
            "replica http://a: 3 overflow connections in use, above 2",
            "replica http://a: 4.5 s behind the change feed (above 3 s): other replicas' \
             writes are not in its memory yet; is its database reachable?",
            "replica http://b: unreachable",
            "17 connections on the database, above 12",
            "the database is full: 17 of 17 client connections",
        ]
    );
    assert_eq!(w[3].level, Level::Fail);
    let rendered = render_text(&View {
        warnings: w,
        ..busy
    });
    assert!(rendered.contains("FAIL the database is full"), "{rendered}");
    assert!(
        rendered.contains("max_connections 20, reserved 3"),
        "{rendered}"
    );
}
