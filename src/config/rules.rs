//! How a section rejects a value: [`ConfigError`] and the range checks every section uses, so
//! each error names the key, the value and the allowed range in the same words.

/// A configuration that could not be loaded or is out of range.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value outside its allowed range.
    #[error("invalid configuration: {key} = {value} (allowed: {allowed})")]
    Invalid {
        key: &'static str,
        value: String,
        allowed: &'static str,
    },
    /// The file or environment did not parse into the typed structure.
    #[error("invalid configuration: {0}")]
    Parse(String),
}

/// `Ok` when `ok`, else the error naming `key`, `value` and `allowed`.
pub(super) fn check(
    ok: bool,
    key: &'static str,
    value: impl ToString,
    allowed: &'static str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key,
            value: value.to_string(),
            allowed,
        })
    }
}

/// A duration in seconds within `min..=max`.
pub(super) fn secs(
    v: f64,
    key: &'static str,
    min: f64,
    max: f64,
    allowed: &'static str,
) -> Result<(), ConfigError> {
    check(v.is_finite() && v >= min && v <= max, key, v, allowed)
}

/// An `http://` or `https://` URL.
pub(super) fn is_http_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}
