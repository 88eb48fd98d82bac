//! Secrets leave the configuration only through here: URLs with their password replaced by `***`.

/// A URL for display: as written, unless it carries credentials (then [`redact_url`]).
pub fn display_url(url: &str) -> String {
    if url.contains('@') {
        redact_url(url)
    } else {
        url.to_string()
    }
}

/// The URL with any password replaced by `***`; unparseable input is hidden whole.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            // A password can also hide in the query string (`?password=`).
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        Err(_) if url.contains('@') => "***".into(),
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:hunter2@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(
            redact_url("postgres://u@h/d?password=hunter2&x=1"),
            "postgres://u@h/d?password=***&x=1"
        );
        assert_eq!(display_url("http://h:8080"), "http://h:8080");
        assert_eq!(display_url("not a url @ all"), "***");
    }
}
