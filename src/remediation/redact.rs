//! Redaction (DESIGN §6.5): what leaves the machine for a model or a change request carries no
//! secrets. Every match becomes `[REDACTED:kind]`, and the caller learns how many of each kind
//! were replaced.
//!
//! # Rules and their order
//!
//! The rules run one after the other over the whole text, each over the previous one's output,
//! in this order (the order is [`BUILTIN_KINDS`]):
//!
//! 1. `gcp_service_account`: the `"private_key"` value of a service-account JSON (an escaped
//!    PEM), before the PEM rule sees the key inside it.
//! 2. `private_key`: whole PEM blocks, `-----BEGIN … PRIVATE KEY-----` to `-----END … PRIVATE
//!    KEY-----`, across real or escaped (`\n`) line breaks; a block cut off before its END loses
//!    its base64 lines. Before every other rule, so that nothing inside a key is half-redacted.
//! 3. `jwt`: before the `token=` pairs, so that `token=eyJ…` is one redaction that says what it
//!    was.
//! 4. Vendor secrets named by their context, which are long base64 runs that may happen to
//!    hold a prefix of rule 5 (`…/AKIA…`): `aws_secret_key` (`aws_secret_access_key=…`),
//!    `azure_key` (`AccountKey=…`).
//! 5. Vendor tokens with a fixed prefix, which say more than a generic pair: `aws_access_key`,
//!    `gcp_api_key`, `github_token`, `gitlab_token`, `slack_webhook`, `slack_token`,
//!    `stripe_key`.
//! 6. `url_credentials`: the password of `scheme://user:password@host` (scheme, user and host
//!    stay: they tell the model which service failed).
//! 7. `password`: the value of `password=`/`secret=`/`token=`/`api_key=`… pairs (logfmt, query
//!    strings, connection strings, `"key": "value"` JSON, Python's `'key': 'value'`), and of
//!    `Authorization:`/`X-Api-Key:` headers; the key stays.
//! 8. `email`.
//! 9. The user's patterns (`redact = [{ name, pattern }]`), in config order. They run last so
//!    that a broad pattern of the user's never breaks up a known secret before its rule sees
//!    it. A pattern with capture groups replaces only the first group that matched
//!    (`order_ref=(\w+)` keeps `order_ref=`); without groups, the whole match.
//!
//! A later rule never redacts what is already a `[REDACTED:…]` marker: a match that lies within
//! markers is left alone (the value of `token=[REDACTED:jwt]` is not counted again). A match
//! that covers a marker *and* other text takes the marker in (the marker's count moves to the
//! new kind), so that no rule can leave a secret's remainder behind.
//!
//! # Precision
//!
//! Log text is mostly not secret, and what the model does not see it cannot fix: every rule is
//! anchored on a vendor's prefix, a key name or a syntax (`://…:…@`), never on "a long random
//! string". A git sha, a UUID, "password reset requested" or "token bucket refilled" are left
//! alone. Matching is linear in the text (the `regex` crate), so hostile log text cannot make
//! redaction slow.

use std::collections::BTreeMap;

use regex::{Captures, Regex};
use serde::Deserialize;

/// One of the user's own patterns, from `redact = [{ name = "customer_id", pattern = "CUST-\\d+" }]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserPattern {
    /// The kind in `[REDACTED:kind]` and in the counts: ASCII letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// A `regex` crate pattern.
    pub pattern: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("redact pattern name {name:?}: must be 1 to 64 ASCII letters, digits, `_`, `-` or `.`")]
    Name { name: String },
    #[error("redact pattern {name}: {source}")]
    Pattern {
        name: String,
        #[source]
        source: regex::Error,
    },
}

/// Text with its secrets replaced, and how many of each kind were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    /// Kind → number of replacements; kinds with none are absent.
    pub counts: BTreeMap<String, usize>,
}

impl Redacted {
    /// Replacements of every kind.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

/// The built-in kinds, in the order they are applied.
pub const BUILTIN_KINDS: &[&str] = &[
    "gcp_service_account",
    "private_key",
    "jwt",
    "aws_secret_key",
    "azure_key",
    "aws_access_key",
    "gcp_api_key",
    "github_token",
    "gitlab_token",
    "slack_webhook",
    "slack_token",
    "stripe_key",
    "url_credentials",
    "password",
    "email",
];

/// Key names whose value is a credential in `key=value`, `"key": "value"` and YAML `key: value`
/// pairs, in code, config files and log text alike. A key that ends with one of the long words
/// counts too (`db_password`, `client_secret`, `refresh_token`, `x-api-key`), one that merely
/// contains it does not (`passwordless`, `tokens`, `tokenizer`). The short words count as the
/// last part of a compound name only (`DB_PASS`, `smtp_pass`, `INTERNAL_KEY`, not `bypass`,
/// `monkey`), and `pass` alone.
const PAIR_KEYS: &str = concat!(
    r"\b(?:[A-Za-z0-9_.-]*(?:password|passwd|passphrase|pwd|secret|secret[_-]?key|private[_-]?key",
    r"|api[_-]?key|access[_-]?key|token|credentials?)",
    r"|[A-Za-z0-9.-]*[A-Za-z0-9][_.-](?:pass|key)|pass)"
);

/// The value of a pair: quoted (with the quote's escapes), or bare up to a separator of
/// logfmt, query strings, connection strings and `toString()` output.
const PAIR_VALUE: &str = r#"(?:\\"((?:[^"\\]|\\[^"])+)\\"|"((?:[^"\\]|\\.)+)"|'((?:[^'\\]|\\.)+)'|([^\s&;,"'}\])>\\][^\s&;,"'}\])>]*))"#;

/// `(kind, pattern)`; the secret is the first capture group that matched, or the whole match
/// when the pattern has no groups. Sources of the formats are cited per rule.
fn builtin_rules() -> Vec<(&'static str, String, Option<Accept>)> {
    vec![
        // Google Cloud service-account key files: `"private_key": "-----BEGIN PRIVATE
        // KEY-----\nMII…\n-----END PRIVATE KEY-----\n"`; also as an escaped string inside a
        // JSON log line.
        (
            "gcp_service_account",
            r#""private_key"\s*:\s*"((?:[^"\\]|\\.)+)"|\\"private_key\\"\s*:\s*\\"((?:[^"\\]|\\[^"])+)\\""#
                .to_string(),
            None,
        ),
        // RFC 7468 PEM: PKCS#8 `PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, PKCS#1 `RSA PRIVATE
        // KEY`, SEC1 `EC PRIVATE KEY`, `OPENSSH PRIVATE KEY`, `DSA`, and OpenPGP's `PGP
        // PRIVATE KEY BLOCK`. The second branch takes a block cut off before its END (a
        // truncated log line): the header and the base64 lines that follow it.
        (
            "private_key",
            concat!(
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
                r"(?:(?s:.*?)-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
                r"|(?:(?:\\r|\\n|\r|\n|[ \t])+(?:[A-Za-z0-9+/=]{16,}|[A-Za-z-]+: [A-Za-z0-9,-]+))*)",
            )
            .to_string(),
            None,
        ),
        // RFC 7519 compact JWS: base64url(header).base64url(payload).signature; the header is a
        // JSON object, so it starts `eyJ` (`{"`). An empty signature (`alg: none`) counts, and
        // the two further segments of a JWE (RFC 7516) go with it.
        (
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+){0,2}"
                .to_string(),
            None,
        ),
        // AWS secret access keys: 40 characters of base64 (`wJalrXUtnFEMI/K7MDENG/…`), only
        // next to their name: `aws_secret_access_key=` (credentials file, environment), the
        // `SecretAccessKey` of STS's JSON answer, `secret_access_key:` in YAML.
        (
            "aws_secret_key",
            r#"(?i:(?:aws[_-]?)?secret[_-]?access[_-]?key|aws[_-]?secret[_-]?key)\\?["']?\s*[:=]\s*\\?["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#
                .to_string(),
            None,
        ),
        // Azure connection strings: storage `AccountKey=` (base64 of 64 bytes), Service Bus
        // and Event Hubs `SharedAccessKey=`, `SharedAccessSignature=` (a whole SAS token), and
        // the `sig=` of a SAS URL (`…blob.core.windows.net/c/b?sv=…&sig=…`).
        (
            "azure_key",
            r#"\b(?:AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{20,}={0,2})|\bSharedAccessSignature=([^;\s"']+)|[?&;]sig=([A-Za-z0-9%+/=]{16,})"#
                .to_string(),
            None,
        ),
        // AWS access key ids (IAM "Understanding unique ID prefixes"): 20 characters, `AKIA`
        // long-term, `ASIA` temporary (STS); `ABIA`/`ACCA` for some service-specific keys.
        (
            "aws_access_key",
            r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b".to_string(),
            None,
        ),
        // Google API keys: `AIza` and 35 more characters of `[0-9A-Za-z_-]`.
        ("gcp_api_key", r"\bAIza[0-9A-Za-z_-]{35}".to_string(), None),
        // GitHub ("About authentication to GitHub", token formats): `ghp_` personal, `gho_`
        // OAuth, `ghu_` user-to-server, `ghs_` server-to-server, `ghr_` refresh, each with 36
        // or more base62 characters; fine-grained personal tokens `github_pat_…`.
        (
            "github_token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,247})\b".to_string(),
            None,
        ),
        // GitLab token prefixes ("Token overview"): personal/project/group access `glpat-`,
        // deploy `gldt-`, runner `glrt-`, trigger `glptt-`, CI job `glcbt-`, feed `glft-`,
        // OAuth secrets `gloas-`, SCIM `glsoat-`, incoming mail `glimt-`, agent `glagent-`.
        (
            "gitlab_token",
            r"\b(?:glpat|gldt|glrt|glptt|glcbt|glft|gloas|glsoat|glimt|glagent)-[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_.-]+)?"
                .to_string(),
            None,
        ),
        // Slack incoming webhooks `https://hooks.slack.com/services/T…/B…/…` (and workflow
        // triggers): the path is the credential, the host stays.
        (
            "slack_webhook",
            r"\bhooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9_/+-]+)".to_string(),
            None,
        ),
        // Slack tokens ("Token types"): bot `xoxb-`, user `xoxp-`, workspace `xoxa-`, refresh
        // `xoxr-`/`xoxe-`, legacy `xoxs-`, app-level `xapp-`.
        (
            "slack_token",
            r"\bxox[abeprs]-[A-Za-z0-9-]{10,}|\bxapp-[0-9]-[A-Za-z0-9-]{10,}".to_string(),
            None,
        ),
        // Stripe ("API keys"): secret `sk_live_`/`sk_test_`, restricted `rk_live_`/`rk_test_`,
        // webhook signing secrets `whsec_`. Publishable `pk_` keys are public and stay.
        (
            "stripe_key",
            r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|\bwhsec_[A-Za-z0-9]{24,}".to_string(),
            None,
        ),
        // RFC 3986 userinfo: `scheme://user:password@host`. The password may itself hold an
        // unencoded `@`: the last `@` before the path ends it.
        (
            "url_credentials",
            r#"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@"'<>]*:([^\s/?#"'<>]+)@"#.to_string(),
            None,
        ),
        (
            "password",
            concat!(
                    // key=value (logfmt, query strings, `Pwd=` of ODBC connection strings)
                    r#"(?i:{keys})[ \t]*=[ \t]*{value}"#,
                    // "key": "value", and the same escaped inside a JSON string
                    r#"|"(?i:{keys})"\s*:\s*"((?:[^"\\]|\\.)+)""#,
                    r#"|\\"(?i:{keys})\\"\s*:\s*\\"((?:[^"\\]|\\[^"])+)\\""#,
                    // Python's repr of a dict: 'key': 'value'
                    r#"|'(?i:{keys})'\s*:\s*'((?:[^'\\]|\\.)+)'"#,
                    // YAML and `key: value` config lines: one token (or a quoted string) to the
                    // end of the line, so prose ("Password: must be at least 12 characters")
                    // is left alone
                    r#"|(?m:^[ \t]*(?:-[ \t]+)?(?i:{keys})[ \t]*:[ \t]+(?:"([^"\n]+)"|'([^'\n]+)'|([^\s#"'][^\s#]*))[ \t]*(?:\#[^\n]*)?$)"#,
                    // HTTP headers, also as dumped in JSON; prose ("authorization: denied")
                    // is too short to be a credential
                    r#"|(?i:\b(?:authorization|proxy-authorization|x-api-key|x-auth-token|x-access-token))\\?"?\s*:\s*\\?"?(?i:(?:bearer|basic|token|digest)\s+)?([^\s"'\\,;]{8,})"#,
            )
            .replace("{keys}", PAIR_KEYS)
            .replace("{value}", PAIR_VALUE),
            None,
        ),
        // Addresses with a dotted domain; not `git@github.com` (an SSH remote) nor
        // `icon@2x.png` (an asset name).
        (
            "email",
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
                .to_string(),
            Some(is_email),
        ),
    ]
}

/// A second look at a match `text[start..end]`, for what a regular expression cannot say;
/// `false` keeps the match as it is.
type Accept = fn(text: &str, start: usize, end: usize) -> bool;

/// Rejects what the e-mail pattern matches but is not an address: the user of a URL
/// (`https://x-access-token@github.com/…`), an SSH remote, a file name.
fn is_email(text: &str, start: usize, end: usize) -> bool {
    const NOT_DOMAINS: &[&str] = &[
        "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "js", "mjs", "cjs", "ts", "tsx", "jsx",
        "css", "map", "json", "html", "py", "rb", "rs", "go", "java", "kt", "class", "jar", "so",
        "dll", "dylib", "txt", "log", "yml", "yaml", "toml", "lock", "tgz", "gz", "zip",
    ];
    if text[..start].ends_with("://") {
        return false;
    }
    let Some((local, domain)) = text[start..end].rsplit_once('@') else {
        return false;
    };
    let tld = domain.rsplit('.').next().unwrap_or_default();
    !local.eq_ignore_ascii_case("git")
        && !NOT_DOMAINS.iter().any(|ext| tld.eq_ignore_ascii_case(ext))
}

#[derive(Debug, Clone)]
struct Rule {
    kind: String,
    regex: Regex,
    accept: Option<Accept>,
}

/// Replaces secrets in text with `[REDACTED:kind]`. Compiled once, cheap to share.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<Rule>,
    /// Finds the markers that earlier rules left.
    marker: Regex,
}

const MARKER_PREFIX: &str = "[REDACTED:";

impl Redactor {
    /// The built-in rules followed by the user's patterns. A bad name or pattern is an error
    /// that names it.
    pub fn new(user_patterns: &[UserPattern]) -> Result<Redactor, RedactError> {
        let mut rules = Vec::with_capacity(BUILTIN_KINDS.len() + user_patterns.len());
        for (kind, pattern, accept) in builtin_rules() {
            let regex = Regex::new(&pattern).map_err(|source| RedactError::Pattern {
                name: kind.to_string(),
                source,
            })?;
            rules.push(Rule {
                kind: kind.to_string(),
                regex,
                accept,
            });
        }
        for user in user_patterns {
            let valid_name = !user.name.is_empty()
                && user.name.len() <= 64
                && user
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !valid_name {
                return Err(RedactError::Name {
                    name: user.name.clone(),
                });
            }
            let regex = Regex::new(&user.pattern).map_err(|source| RedactError::Pattern {
                name: user.name.clone(),
                source,
            })?;
            rules.push(Rule {
                kind: user.name.clone(),
                regex,
                accept: None,
            });
        }
        let marker = Regex::new(r"\[REDACTED:[A-Za-z0-9_.-]{1,64}\]").map_err(|source| {
            RedactError::Pattern {
                name: "marker".to_string(),
                source,
            }
        })?;
        Ok(Redactor { rules, marker })
    }

    /// Every rule in order over `text` (see the module docs for the order and for matches
    /// that meet an earlier rule's marker).
    pub fn redact(&self, text: &str) -> Redacted {
        let mut redacted = Redacted {
            text: text.to_string(),
            counts: BTreeMap::new(),
        };
        for rule in &self.rules {
            if let Some(text) = self.apply(rule, &redacted.text, &mut redacted.counts) {
                redacted.text = text;
            }
        }
        redacted
    }

    /// One rule over `text`: the new text, or `None` when nothing was replaced.
    fn apply(
        &self,
        rule: &Rule,
        text: &str,
        counts: &mut BTreeMap<String, usize>,
    ) -> Option<String> {
        if !rule.regex.is_match(text) {
            return None;
        }
        let markers: Vec<(usize, usize)> = if text.contains(MARKER_PREFIX) {
            self.marker
                .find_iter(text)
                .map(|m| (m.start(), m.end()))
                .collect()
        } else {
            Vec::new()
        };
        let replacement = format!("{MARKER_PREFIX}{}]", rule.kind);
        let mut out = String::with_capacity(text.len());
        // End of the text already copied or replaced.
        let mut copied = 0;
        let mut replaced = 0;
        for caps in rule.regex.captures_iter(text) {
            let (mut start, mut end) = secret_span(&caps);
            if start == end {
                continue;
            }
            if let Some(accept) = rule.accept
                && !accept(text, start, end)
            {
                continue;
            }
            let overlapping: Vec<(usize, usize)> = markers
                .iter()
                .copied()
                .filter(|&(m_start, m_end)| m_start < end && start < m_end)
                .collect();
            if !overlapping.is_empty() {
                let covered: usize = overlapping
                    .iter()
                    .map(|&(m_start, m_end)| end.min(m_end) - start.max(m_start))
                    .sum();
                if covered == end - start {
                    // Already redacted.
                    continue;
                }
                // Take the markers in: their secrets are now this kind's.
                for &(m_start, m_end) in &overlapping {
                    start = start.min(m_start);
                    end = end.max(m_end);
                    let kind = &text[m_start + MARKER_PREFIX.len()..m_end - 1];
                    if let Some(count) = counts.get_mut(kind) {
                        *count -= 1;
                        if *count == 0 {
                            counts.remove(kind);
                        }
                    }
                }
            }
            if start < copied {
                // Grown into the previous replacement by a marker both touch: one secret.
                copied = copied.max(end);
                continue;
            }
            out.push_str(&text[copied..start]);
            out.push_str(&replacement);
            copied = end;
            replaced += 1;
        }
        if replaced == 0 && copied == 0 {
            return None;
        }
        out.push_str(&text[copied..]);
        if replaced > 0 {
            *counts.entry(rule.kind.clone()).or_default() += replaced;
        }
        Some(out)
    }
}

/// The first capture group that took part in the match, or the whole match.
fn secret_span(caps: &Captures<'_>) -> (usize, usize) {
    caps.iter()
        .skip(1)
        .flatten()
        .next()
        .or_else(|| caps.get(0))
        .map_or((0, 0), |m| (m.start(), m.end()))
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;
    use proptest::prelude::*;

    /// Compiled once for every test and property case.
    static REDACTOR: LazyLock<Redactor> = LazyLock::new(|| match Redactor::new(&[]) {
        Ok(redactor) => redactor,
        Err(error) => panic!("built-in rules: {error}"),
    });

    fn redactor() -> &'static Redactor {
        &REDACTOR
    }

    fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|&(k, n)| (k.to_string(), n)).collect()
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\n\
MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n\
VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n\
-----END RSA PRIVATE KEY-----";

    /// (kind, input, expected output): one realistic line per kind, and the lines around a
    /// kind that must stay as they are.
    const CASES: &[(&str, &str, &str)] = &[
        (
            "aws_access_key",
            "botocore: using access key AKIAIOSFODNN7EXAMPLE from env",
            "botocore: using access key [REDACTED:aws_access_key] from env",
        ),
        (
            "aws_access_key",
            r#"{"AccessKeyId": "ASIAY34FZKBOKMUTVV7A", "Expiration": "2026-06-15T13:00:00Z"}"#,
            r#"{"AccessKeyId": "[REDACTED:aws_access_key]", "Expiration": "2026-06-15T13:00:00Z"}"#,
        ),
        (
            "aws_secret_key",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [REDACTED:aws_secret_key]",
        ),
        (
            "aws_secret_key",
            r#"{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "SessionToken": null}"#,
            r#"{"SecretAccessKey": "[REDACTED:aws_secret_key]", "SessionToken": null}"#,
        ),
        (
            "aws_secret_key",
            "env AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_REGION=eu-west-1",
            "env AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret_key] AWS_REGION=eu-west-1",
        ),
        (
            "gcp_api_key",
            "GET https://maps.googleapis.com/maps/api/geocode/json?address=x&key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY failed: 403",
            "GET https://maps.googleapis.com/maps/api/geocode/json?address=x&key=[REDACTED:gcp_api_key] failed: 403",
        ),
        (
            "gcp_service_account",
            r#"loaded credentials {"type": "service_account", "project_id": "shop-prod", "private_key_id": "1f3e", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n", "client_email": "svc@shop-prod.iam.gserviceaccount.com"}"#,
            r#"loaded credentials {"type": "service_account", "project_id": "shop-prod", "private_key_id": "1f3e", "private_key": "[REDACTED:gcp_service_account]", "client_email": "[REDACTED:email]"}"#,
        ),
        (
            "azure_key",
            "BlobServiceClient: DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net",
            "BlobServiceClient: DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=[REDACTED:azure_key];EndpointSuffix=core.windows.net",
        ),
        (
            "azure_key",
            "Endpoint=sb://shop.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=q8bV4nB9ZqJkW6XcHf3Lr2Yt7Pm1Sd0Ea5Ug8Ki2Oo4=",
            "Endpoint=sb://shop.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=[REDACTED:azure_key]",
        ),
        (
            "azure_key",
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&ss=b&srt=co&sp=rl&se=2026-07-01T00:00:00Z&sig=J3d%2BQm8n4r5t6y7u8i9o0pLkJhGfDsA%3D",
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=[REDACTED:azure_key]",
        ),
        (
            "azure_key",
            "404 on https://acct.blob.core.windows.net/exports/a.csv?sv=2022-11-02&sr=b&sp=r&sig=J3d%2BQm8n4r5t6y7u8i9o0pLkJhGfDsA%3D",
            "404 on https://acct.blob.core.windows.net/exports/a.csv?sv=2022-11-02&sr=b&sp=r&sig=[REDACTED:azure_key]",
        ),
        (
            "github_token",
            "git clone https://x-access-token@github.com/acme/shop failed; GITHUB_TOKEN=ghs_16C7e42F292c6912E7710c838347Ae178B4a",
            "git clone https://x-access-token@github.com/acme/shop failed; GITHUB_TOKEN=[REDACTED:github_token]",
        ),
        (
            "github_token",
            "Authorization: token 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",
            "Authorization: token [REDACTED:github_token]",
        ),
        (
            "github_token",
            "using github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
            "using [REDACTED:github_token]",
        ),
        (
            "gitlab_token",
            "PRIVATE-TOKEN: glpat-xY3kE9vQ2mN7pL4sR8tW",
            "PRIVATE-TOKEN: [REDACTED:gitlab_token]",
        ),
        (
            "slack_token",
            "slack_sdk.errors.SlackApiError: invalid_auth for xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
            "slack_sdk.errors.SlackApiError: invalid_auth for [REDACTED:slack_token]",
        ),
        (
            "slack_webhook",
            "POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX -> 404 no_service",
            "POST https://hooks.slack.com/services/[REDACTED:slack_webhook] -> 404 no_service",
        ),
        (
            "stripe_key",
            "stripe.error.AuthenticationError: Invalid API Key provided: sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            "stripe.error.AuthenticationError: Invalid API Key provided: [REDACTED:stripe_key]",
        ),
        (
            "stripe_key",
            "restricted key rk_live_51H8b2kLmN0pQrStUvWxYz01 lacks permission",
            "restricted key [REDACTED:stripe_key] lacks permission",
        ),
        (
            "jwt",
            concat!(
                "401 Unauthorized: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
                " expired"
            ),
            "401 Unauthorized: Bearer [REDACTED:jwt] expired",
        ),
        (
            "private_key",
            "ssh: no key found in \"-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\\n-----END OPENSSH PRIVATE KEY-----\\n\"",
            "ssh: no key found in \"[REDACTED:private_key]\\n\"",
        ),
        (
            "private_key",
            "cut off: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nMIIEvQIBADANBgkq",
            "cut off: [REDACTED:private_key]",
        ),
        (
            "password",
            "DB_HOST=db1\nDB_PASS=s3cr3t-Pa55\nINTERNAL_KEY=a1b2c3d4e5\nexport SMTP_PASSWORD='x y z'",
            "DB_HOST=db1\nDB_PASS=[REDACTED:password]\nINTERNAL_KEY=[REDACTED:password]\nexport SMTP_PASSWORD='[REDACTED:password]'",
        ),
        (
            "password",
            "database:\n  host: db1\n  password: hunter2 # rotated monthly\nmail:\n  smtp_pass: \"p@ss word\"\n  api_key: 'k-123'\n  - token: abc.def\n",
            "database:\n  host: db1\n  password: [REDACTED:password] # rotated monthly\nmail:\n  smtp_pass: \"[REDACTED:password]\"\n  api_key: '[REDACTED:password]'\n  - token: [REDACTED:password]\n",
        ),
        (
            "password",
            "level=error msg=\"login failed\" user=alice password=hunter2 attempt=3",
            "level=error msg=\"login failed\" user=alice password=[REDACTED:password] attempt=3",
        ),
        (
            "password",
            "GET /api/v1/export?format=csv&api_key=3f9a1c2e7b&page=2 HTTP/1.1",
            "GET /api/v1/export?format=csv&api_key=[REDACTED:password]&page=2 HTTP/1.1",
        ),
        (
            "password",
            "Server=db1;Database=shop;Uid=sa;Pwd=Tr0ub4dor!3x;",
            "Server=db1;Database=shop;Uid=sa;Pwd=[REDACTED:password];",
        ),
        (
            "password",
            r#"{"user":"alice","password":"correct horse battery staple","remember":true}"#,
            r#"{"user":"alice","password":"[REDACTED:password]","remember":true}"#,
        ),
        (
            "password",
            r#"{"msg":"payload {\"client_secret\":\"9f8e7d6c5b\",\"grant_type\":\"client_credentials\"}"}"#,
            r#"{"msg":"payload {\"client_secret\":\"[REDACTED:password]\",\"grant_type\":\"client_credentials\"}"}"#,
        ),
        (
            "password",
            "kwargs={'host': 'db1', 'passwd': 's3cr3t!', 'port': 5432}",
            "kwargs={'host': 'db1', 'passwd': '[REDACTED:password]', 'port': 5432}",
        ),
        (
            "password",
            "User{name=bob, password=hunter2, roles=[admin]}",
            "User{name=bob, password=[REDACTED:password], roles=[admin]}",
        ),
        (
            "password",
            "retrying with SECRET=\"a b c\" and refresh_token=8xLOxBtZp8",
            "retrying with SECRET=\"[REDACTED:password]\" and refresh_token=[REDACTED:password]",
        ),
        (
            "password",
            "> Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l",
            "> Authorization: Basic [REDACTED:password]",
        ),
        (
            "url_credentials",
            "sqlalchemy.exc.OperationalError: could not connect to postgresql://shop:p4ss@w0rd@db.internal:5432/shop",
            "sqlalchemy.exc.OperationalError: could not connect to postgresql://shop:[REDACTED:url_credentials]@db.internal:5432/shop",
        ),
        (
            "url_credentials",
            "redis.exceptions.ConnectionError: redis://:hunter2@cache:6379/0 refused",
            "redis.exceptions.ConnectionError: redis://:[REDACTED:url_credentials]@cache:6379/0 refused",
        ),
        (
            "email",
            "password reset requested for jane.doe+shop@example.co.uk (user 42)",
            "password reset requested for [REDACTED:email] (user 42)",
        ),
    ];

    #[test]
    fn every_kind_is_redacted_in_a_realistic_line() {
        let redactor = redactor();
        for (kind, input, expected) in CASES {
            let redacted = redactor.redact(input);
            assert_eq!(&redacted.text, expected, "{kind}: {input}");
            assert!(
                redacted.counts.get(*kind).copied().unwrap_or(0) >= 1,
                "{kind} not counted: {:?}",
                redacted.counts
            );
        }
        for kind in BUILTIN_KINDS {
            assert!(
                CASES.iter().any(|(k, _, _)| k == kind),
                "no case for {kind}"
            );
        }
    }

    #[test]
    fn ordinary_log_text_is_left_alone() {
        let redactor = redactor();
        for line in [
            "password reset requested for user 42",
            "token bucket refilled: 100 tokens",
            "Password: must be at least 12 characters",
            "authorization failed: token expired",
            "Authorization: denied",
            "commit da39a3ee5e6b4b0d3255bfef95601890afd80709 deployed",
            "request 3fa85f64-5717-4562-b3fc-2c963f66afa6 took 12ms",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 is not a token without dots",
            "loaded passwordless=true tokenizer=bpe max_tokens=4096",
            "firewall bypass=false monkey=3 turnkey=yes",
            "hint: password must be set",
            "cache: key lookup took 3ms",
            "git@github.com:acme/shop.git: Permission denied (publickey)",
            "GET /static/icon@2x.png 304",
            "installed lodash@4.17.21 and @types/node@20.1.0",
            "listening on http://0.0.0.0:8080/health",
            "https://github.com/acme/shop/blob/main/src/cart.py#L42",
            "pk_live_51H8b2kLmN0pQrStUvWxYz01 is publishable",
            "SIGTERM received, sig=15",
            r#"{"password": null, "token": ""}"#,
            "    at com.acme.shop.CartService.checkout(CartService.java:87)",
            "Traceback (most recent call last):\n  File \"/app/shop/cart.py\", line 42, in total\nKeyError: 'sku'",
        ] {
            let redacted = redactor.redact(line);
            assert_eq!(redacted.text, line, "{:?}", redacted.counts);
            assert!(redacted.counts.is_empty());
        }
    }

    #[test]
    fn a_secret_inside_a_pair_is_one_redaction_of_its_own_kind() {
        let redactor = redactor();
        type Case = (String, String, &'static [(&'static str, usize)]);
        let cases: &[Case] = &[
            (
                format!("auth ok token={JWT} user=1"),
                "auth ok token=[REDACTED:jwt] user=1".to_string(),
                &[("jwt", 1)],
            ),
            (
                format!(r#"{{"access_token": "{JWT}", "expires_in": 3600}}"#),
                r#"{"access_token": "[REDACTED:jwt]", "expires_in": 3600}"#.to_string(),
                &[("jwt", 1)],
            ),
            (
                "api_key=AKIAIOSFODNN7EXAMPLE".to_string(),
                "api_key=[REDACTED:aws_access_key]".to_string(),
                &[("aws_access_key", 1)],
            ),
            (
                format!("https://deploy:{JWT}@registry.example.com/v2/"),
                "https://deploy:[REDACTED:jwt]@registry.example.com/v2/".to_string(),
                &[("jwt", 1)],
            ),
            (
                // A PEM block whose base64 happens to hold an e-mail-like run and a JWT-like
                // word: one redaction, the block.
                format!("key=\"{PEM}\" owner=ops@example.com"),
                "key=\"[REDACTED:private_key]\" owner=[REDACTED:email]".to_string(),
                &[("email", 1), ("private_key", 1)],
            ),
        ];
        for (input, expected, expected_counts) in cases {
            let redacted = redactor.redact(input);
            assert_eq!(&redacted.text, expected);
            assert_eq!(redacted.counts, counts(expected_counts), "{input}");
        }
    }

    #[test]
    fn a_pem_block_across_lines_is_one_redaction() {
        let redacted = redactor().redact(&format!(
            "ERROR tls: failed to load key from config:\n{PEM}\nnext line stays"
        ));
        assert_eq!(
            redacted.text,
            "ERROR tls: failed to load key from config:\n[REDACTED:private_key]\nnext line stays"
        );
        assert_eq!(redacted.counts, counts(&[("private_key", 1)]));
    }

    #[test]
    fn several_secrets_in_one_trace_are_counted_per_kind() {
        let trace = format!(
            "2026-06-15T12:00:01Z ERROR payment failed for bob@example.com \
             (card token={JWT})\n\
             Traceback (most recent call last):\n  \
             File \"/app/shop/payments.py\", line 88, in charge\n    \
             stripe.api_key = \"sk_live_51H8b2kLmN0pQrStUvWxYz01\"\n  \
             File \"/app/shop/db.py\", line 12, in connect\n    \
             engine = create_engine(\"postgresql://shop:p4ss@db:5432/shop\")\n\
             botocore.exceptions.ClientError: AKIAIOSFODNN7EXAMPLE denied, retry as alice@example.com \
             password=hunter2 secret=hunter3\n"
        );
        let redacted = redactor().redact(&trace);
        assert_eq!(
            redacted.counts,
            counts(&[
                ("aws_access_key", 1),
                ("email", 2),
                ("jwt", 1),
                ("password", 2),
                ("stripe_key", 1),
                ("url_credentials", 1),
            ])
        );
        assert_eq!(redacted.total(), 8);
        for secret in [
            "bob@example.com",
            JWT,
            "sk_live_51H8b2kLmN0pQrStUvWxYz01",
            "p4ss",
            "AKIAIOSFODNN7EXAMPLE",
            "alice@example.com",
            "hunter2",
            "hunter3",
        ] {
            assert!(
                !redacted.text.contains(secret),
                "{secret} left in:\n{}",
                redacted.text
            );
        }
        // What the model needs stays.
        assert!(
            redacted
                .text
                .contains("File \"/app/shop/payments.py\", line 88, in charge")
        );
        assert!(
            redacted
                .text
                .contains("postgresql://shop:[REDACTED:url_credentials]@db:5432/shop")
        );
    }

    #[test]
    fn user_patterns_run_after_the_built_in_rules() {
        let redactor = Redactor::new(&[
            UserPattern {
                name: "customer_id".to_string(),
                pattern: r"CUST-\d+".to_string(),
            },
            UserPattern {
                name: "order_ref".to_string(),
                pattern: r"order_ref=(\w+)".to_string(),
            },
            UserPattern {
                // Broad enough to meet an earlier marker: it must not undo it.
                name: "word".to_string(),
                pattern: r"REDACTED".to_string(),
            },
        ]);
        let redactor = match redactor {
            Ok(redactor) => redactor,
            Err(error) => panic!("{error}"),
        };
        let redacted = redactor
            .redact("refund for CUST-0042 and CUST-7 order_ref=A1B2 failed, mail ops@example.com");
        assert_eq!(
            redacted.text,
            "refund for [REDACTED:customer_id] and [REDACTED:customer_id] order_ref=[REDACTED:order_ref] failed, mail [REDACTED:email]"
        );
        assert_eq!(
            redacted.counts,
            counts(&[("customer_id", 2), ("email", 1), ("order_ref", 1)])
        );
    }

    #[test]
    fn a_user_pattern_that_spans_a_marker_takes_it_in() {
        let redactor = match Redactor::new(&[UserPattern {
            name: "session".to_string(),
            pattern: r"session \S+ of \S+".to_string(),
        }]) {
            Ok(redactor) => redactor,
            Err(error) => panic!("{error}"),
        };
        let redacted = redactor.redact("closing session 77 of bob@example.com now");
        assert_eq!(redacted.text, "closing [REDACTED:session] now");
        assert_eq!(redacted.counts, counts(&[("session", 1)]));
    }

    #[test]
    fn bad_user_patterns_are_errors_that_name_them() {
        let bad_regex = Redactor::new(&[UserPattern {
            name: "customer_id".to_string(),
            pattern: "CUST-(\\d+".to_string(),
        }]);
        assert!(
            matches!(&bad_regex, Err(RedactError::Pattern { name, .. }) if name == "customer_id")
        );
        for name in ["", "has space", "a]b"] {
            let bad_name = Redactor::new(&[UserPattern {
                name: name.to_string(),
                pattern: "x".to_string(),
            }]);
            assert!(
                matches!(bad_name, Err(RedactError::Name { .. })),
                "{name:?}"
            );
        }
    }

    #[test]
    fn an_empty_matching_user_pattern_changes_nothing() {
        let redactor = match Redactor::new(&[UserPattern {
            name: "nothing".to_string(),
            pattern: "x*".to_string(),
        }]) {
            Ok(redactor) => redactor,
            Err(error) => panic!("{error}"),
        };
        let redacted = redactor.redact("abc");
        assert_eq!(redacted.text, "abc");
        assert!(redacted.counts.is_empty());
    }

    /// Secrets of every built-in kind, generated.
    fn secret() -> impl Strategy<Value = String> {
        prop_oneof![
            "AKIA[A-Z0-9]{16}".prop_map(|s| s),
            "ASIA[A-Z0-9]{16}".prop_map(|s| s),
            "[A-Za-z0-9/+]{40}".prop_map(|s| format!("aws_secret_access_key={s}")),
            "AIza[0-9A-Za-z_-]{35}".prop_map(|s| s),
            "gh[pousr]_[A-Za-z0-9]{36}".prop_map(|s| s),
            "github_pat_[A-Za-z0-9_]{82}".prop_map(|s| s),
            "glpat-[A-Za-z0-9_-]{20}".prop_map(|s| s),
            "xox[bpars]-[0-9]{11}-[0-9]{11}-[A-Za-z0-9]{24}".prop_map(|s| s),
            "(sk|rk)_(live|test)_[A-Za-z0-9]{24,99}".prop_map(|s| s),
            "[A-Za-z0-9_-]{10,40}\\.[A-Za-z0-9_-]{10,80}\\.[A-Za-z0-9_-]{10,43}"
                .prop_map(|s| format!("eyJ{s}")),
            "[A-Za-z0-9+/]{86}".prop_map(|s| format!("AccountKey={s}==")),
            "[a-z]{3,10}".prop_map(|s| format!("password={s}x")),
            "[a-z0-9]{3,10}".prop_map(|s| format!("https://u:{s}9@h.example.com/")),
            "[a-z]{1,10}\\.[a-z]{1,10}".prop_map(|s| format!("{s}@mail.example.org")),
            "[A-Za-z0-9+/]{64}".prop_map(|s| {
                format!("-----BEGIN PRIVATE KEY-----\n{s}\n-----END PRIVATE KEY-----")
            }),
        ]
    }

    /// What stands between a secret and the text around it in logs.
    const SEPARATORS: &[&str] = &[
        " ", "\n", "\t", "\"", "'", ", ", ";", "(", ")", "[", "] ", ": ",
    ];

    /// The part of a generated secret that must not survive (the key name of a pair stays).
    fn secret_part(planted: &str) -> &str {
        for prefix in [
            "aws_secret_access_key=",
            "AccountKey=",
            "password=",
            "https://u:",
        ] {
            if let Some(rest) = planted.strip_prefix(prefix) {
                return rest.split('@').next().unwrap_or(rest);
            }
        }
        planted
    }

    proptest! {
        #[test]
        fn redaction_never_panics_and_is_idempotent(text in ".*") {
            let redactor = redactor();
            let once = redactor.redact(&text);
            let twice = redactor.redact(&once.text);
            prop_assert_eq!(&twice.text, &once.text);
            prop_assert!(twice.counts.is_empty());
        }

        #[test]
        fn planted_secrets_never_survive(
            words in prop::collection::vec("[a-zA-Z0-9 .,:;()=/_-]{0,12}", 1..8),
            secrets in prop::collection::vec(secret(), 1..5),
            separators in prop::collection::vec(prop::sample::select(SEPARATORS), 16),
        ) {
            // Words and secrets, each secret between two separators a log line might have.
            let mut separators = separators.iter().cycle();
            let mut text = String::new();
            for (i, word) in words.iter().enumerate() {
                text.push_str(word);
                if let Some(secret) = secrets.get(i) {
                    text.push_str(separators.next().copied().unwrap_or(" "));
                    text.push_str(secret);
                    text.push_str(separators.next().copied().unwrap_or(" "));
                }
            }
            for secret in secrets.iter().skip(words.len()) {
                text.push_str(separators.next().copied().unwrap_or(" "));
                text.push_str(secret);
            }
            let redacted = redactor().redact(&text);
            for secret in &secrets {
                let part = secret_part(secret);
                prop_assert!(
                    !redacted.text.contains(part),
                    "{part:?} survived in {:?}",
                    redacted.text
                );
            }
            prop_assert!(redacted.total() >= 1);
        }
    }
}
