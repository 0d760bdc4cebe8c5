//! docker-flow-proxy's labels (`com.df.*`), translated into Træfik's spelling so the one
//! label parser reads them: a service that worked behind docker-flow-proxy works behind
//! shoal with its labels unchanged.
//!
//! ```text
//!  com.df.notify=true                      opts in (traefik.enable=true)
//!  com.df.serviceDomain=a.com,*.b.com      Host(`a.com`) || Host(`*.b.com`)
//!  com.df.servicePath=/api,/v2             PathPrefix(`/api`) || PathPrefix(`/v2`)
//!  com.df.servicePathExclude=/metrics      && !PathPrefix(`/metrics`)
//!  com.df.port=8080                        services.<svc>-df.loadbalancer.server.port
//!  com.df.httpsOnly=true                   middleware redirectScheme (https)
//!  com.df.reqPathSearchReplace=s,r[:s,r]   middleware replacePathRegex per pair
//!  com.df.users=u:p,… (+usersPassEncrypted) middleware basicAuth
//! ```
//! Indexed labels (`com.df.servicePath.1`, `.2`, … up to 10) make one destination each,
//! taking every parameter they do not set from the unindexed label, as
//! docker-flow-proxy does. `distribute`, `serviceName`, `aclName` and the timeouts only
//! steer docker-flow-proxy itself and are accepted and ignored; any other `com.df.`
//! parameter is refused rather than silently dropped (it may restrict access).
//!
//! Deliberate differences: `serviceDomainAlgo` `hdr_beg(host)` (docker-flow-proxy's
//! default, a prefix match on the Host header meant to ignore the port) becomes an exact
//! `Host` match, which ignores the port too; plain-text `users` passwords are stored as
//! SHA-1 htpasswd hashes (`{SHA}`), never in the clear.

use std::collections::BTreeMap;

use base64::Engine as _;
use sha1::Digest as _;

/// The label prefix of docker-flow-proxy.
pub const PREFIX: &str = "com.df.";

/// Indexed destinations docker-flow-proxy looks at (`.1` … `.10`).
const MAX_INDEX: u32 = 10;

/// Parameters that only steer docker-flow-proxy or its listener: accepted, ignored.
const IGNORED: &[&str] = &[
    "notify",
    "distribute",
    "serviceName",
    "aclName",
    "srcPort",
    "srcHttpsPort",
    "timeoutServer",
    "timeoutClient",
    "timeoutTunnel",
    "connectionMode",
    "compressionAlgo",
    "discoveryType",
    "userDef",
];

/// Parameters translated per destination.
const PER_DESTINATION: &[&str] = &[
    "serviceDomain",
    "serviceDomainAlgo",
    "servicePath",
    "servicePathExclude",
    "pathType",
    "port",
    "reqMode",
    "reqPathSearchReplace",
    "httpsOnly",
    "httpsRedirectCode",
    "isDefaultBackend",
];

/// Parameters of the whole service.
const PER_SERVICE: &[&str] = &["users", "usersPassEncrypted"];

/// A docker-flow-proxy label that cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label {key}: {message}")]
#[non_exhaustive]
pub struct DfError {
    /// The label key at fault.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn df_err(key: &str, message: impl Into<String>) -> DfError {
    DfError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Whether `com.df.notify` opts the workload in.
pub fn notified(labels: &BTreeMap<String, String>) -> Result<bool, DfError> {
    let key = "com.df.notify";
    labels.get(key).map_or(Ok(false), |v| parse_bool(key, v))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, DfError> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(df_err(key, format!("`{other}` is not true or false"))),
    }
}

/// The `com.df.` labels by parameter and index (0: unindexed).
struct Params {
    values: BTreeMap<(String, u32), (String, String)>,
}

impl Params {
    fn read(labels: &BTreeMap<String, String>) -> Result<Params, DfError> {
        let mut values = BTreeMap::new();
        for (key, value) in labels {
            let Some(rest) = key.strip_prefix(PREFIX) else {
                continue;
            };
            let (param, index) = match rest.rsplit_once('.') {
                Some((p, i)) => {
                    let n: u32 = i.parse().map_err(|_| {
                        df_err(key, "expected com.df.PARAMETER or com.df.PARAMETER.INDEX")
                    })?;
                    if !(1..=MAX_INDEX).contains(&n) {
                        return Err(df_err(key, format!("index {n} is outside 1..={MAX_INDEX}")));
                    }
                    (p, n)
                }
                None => (rest, 0),
            };
            let known = IGNORED.contains(&param)
                || PER_DESTINATION.contains(&param)
                || (PER_SERVICE.contains(&param) && index == 0);
            if !known {
                return Err(df_err(
                    key,
                    "not supported by shoal (it would be ignored, which could expose the service); \
                     supported: serviceDomain, serviceDomainAlgo, servicePath, servicePathExclude, \
                     pathType, port, reqPathSearchReplace, httpsOnly, httpsRedirectCode, \
                     isDefaultBackend, users, usersPassEncrypted",
                ));
            }
            let value = value.trim().to_string();
            if !value.is_empty() {
                values.insert((param.to_string(), index), (key.clone(), value));
            }
        }
        Ok(Params { values })
    }

    /// The label of `param` for destination `index`, else the unindexed one.
    fn get(&self, param: &str, index: u32) -> Option<&(String, String)> {
        self.values
            .get(&(param.to_string(), index))
            .or_else(|| self.values.get(&(param.to_string(), 0)))
    }

    /// Whether destination `index` exists (docker-flow-proxy's `isServiceDestValid`).
    fn has_destination(&self, index: u32) -> bool {
        ["servicePath", "port", "serviceDomain"]
            .iter()
            .any(|p| self.values.contains_key(&(p.to_string(), index)))
    }

    /// The destinations: `.1`, `.2`, … while they exist, else the unindexed one.
    fn destinations(&self) -> Vec<u32> {
        let indexed: Vec<u32> = (1..=MAX_INDEX)
            .take_while(|i| self.has_destination(*i))
            .collect();
        if !indexed.is_empty() {
            indexed
        } else if self.has_destination(0) {
            vec![0]
        } else {
            Vec::new()
        }
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A rule argument in backticks (they cannot hold a backtick).
fn arg(key: &str, value: &str) -> Result<String, DfError> {
    if value.contains('`') {
        return Err(df_err(key, format!("`{value}` holds a backtick")));
    }
    Ok(format!("`{value}`"))
}

fn any_of(terms: Vec<String>) -> String {
    if terms.len() == 1 {
        terms.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", terms.join(" || "))
    }
}

/// `serviceDomain` under `serviceDomainAlgo`.
fn domain_rule(p: &Params, index: u32) -> Result<Option<String>, DfError> {
    let Some((key, value)) = p.get("serviceDomain", index) else {
        return Ok(None);
    };
    let algo = p
        .get("serviceDomainAlgo", index)
        .map_or(("", "hdr_beg(host)"), |(k, v)| (k.as_str(), v.as_str()));
    let mut terms = Vec::new();
    for d in list(value) {
        let term = if let Some(suffix) = d.strip_prefix('*') {
            // docker-flow-proxy matches the end of the host then (hdr_end).
            format!(
                "HostRegexp(`^.*{}$`)",
                regex::escape(&suffix.to_ascii_lowercase())
            )
        } else {
            match algo.1 {
                "hdr(host)" | "hdr_beg(host)" => format!("Host({})", arg(key, &d)?),
                "hdr_dom(host)" => format!("Host({}) || Host({})", arg(key, &d)?, arg(key, &format!("*.{d}"))?),
                "hdr_end(host)" => format!("HostRegexp(`^.*{}$`)", regex::escape(&d.to_ascii_lowercase())),
                other => {
                    return Err(df_err(
                        algo.0,
                        format!("`{other}` is not supported; use hdr(host), hdr_beg(host), hdr_dom(host) or hdr_end(host)"),
                    ))
                }
            }
        };
        terms.push(term);
    }
    if terms.is_empty() {
        return Ok(None);
    }
    Ok(Some(any_of(terms)))
}

/// One path under `pathType`.
fn path_term(key: &str, path_type: (&str, &str), path: &str) -> Result<String, DfError> {
    let must_be_absolute = |m: &str| {
        if path.starts_with('/') {
            Ok(format!("{m}({})", arg(key, path)?))
        } else {
            Err(df_err(key, format!("`{path}` does not start with /")))
        }
    };
    match path_type.1 {
        "path_beg" => must_be_absolute("PathPrefix"),
        "path" => must_be_absolute("Path"),
        "path_reg" => Ok(format!("PathRegexp({})", arg(key, path)?)),
        "path_end" => Ok(format!("PathRegexp(`{}$`)", regex::escape(path))),
        other => Err(df_err(
            path_type.0,
            format!("`{other}` is not supported; use path_beg, path, path_reg or path_end"),
        )),
    }
}

/// `servicePath` and `servicePathExclude` under `pathType`.
fn path_rule(p: &Params, index: u32, has_domain: bool) -> Result<Option<String>, DfError> {
    let path_type = p
        .get("pathType", index)
        .map_or(("", "path_beg"), |(k, v)| (k.as_str(), v.as_str()));
    let mut parts = Vec::new();
    if let Some((key, value)) = p.get("servicePath", index) {
        let terms = list(value)
            .iter()
            .map(|path| path_term(key, path_type, path))
            .collect::<Result<Vec<_>, _>>()?;
        // A domain alone means every path (docker-flow-proxy's `/`).
        let every_path = has_domain && list(value) == ["/"];
        if !terms.is_empty() && !every_path {
            parts.push(any_of(terms));
        }
    }
    if let Some((key, value)) = p.get("servicePathExclude", index) {
        for path in list(value) {
            parts.push(format!("!{}", path_term(key, ("", "path_beg"), &path)?));
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join(" && ")))
}

/// The Træfik labels for docker-flow-proxy's labels in `labels`; routers, services and
/// middlewares are named `<name>-df` (`<name>-df-<index>` for indexed destinations).
pub fn translate(
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, DfError> {
    let p = Params::read(labels)?;
    let mut out = BTreeMap::new();
    out.insert("traefik.enable".to_string(), "true".to_string());
    let auth = users(&p, name, &mut out)?;
    let destinations = p.destinations();
    if destinations.is_empty() {
        return Err(df_err(
            "com.df.servicePath",
            "com.df.notify=true needs com.df.servicePath or com.df.serviceDomain",
        ));
    }
    for index in destinations {
        destination(&p, name, index, auth.as_deref(), &mut out)?;
    }
    Ok(out)
}

fn destination(
    p: &Params,
    name: &str,
    index: u32,
    auth: Option<&str>,
    out: &mut BTreeMap<String, String>,
) -> Result<(), DfError> {
    let base = if index == 0 {
        format!("{name}-df")
    } else {
        format!("{name}-df-{index}")
    };
    if let Some((key, mode)) = p.get("reqMode", index) {
        if mode != "http" {
            return Err(df_err(
                key,
                format!("reqMode `{mode}` is not supported; only http"),
            ));
        }
    }
    let default_backend = match p.get("isDefaultBackend", index) {
        Some((k, v)) => parse_bool(k, v)?,
        None => false,
    };
    let domain = domain_rule(p, index)?;
    let path = path_rule(p, index, domain.is_some())?;
    let rule = match (domain, path) {
        (Some(d), Some(p)) => format!("{d} && {p}"),
        (Some(d), None) => d,
        (None, Some(p)) => p,
        (None, None) if default_backend => "PathPrefix(`/`)".to_string(),
        (None, None) => {
            return Err(df_err(
                &format!("com.df.servicePath{}", suffix(index)),
                "a destination needs com.df.servicePath or com.df.serviceDomain",
            ))
        }
    };
    let router = |field: &str| format!("traefik.http.routers.{base}.{field}");
    out.insert(router("rule"), rule);
    out.insert(router("service"), base.clone());
    if default_backend {
        out.insert(router("priority"), "1".to_string());
    }
    if let Some((key, port)) = p.get("port", index) {
        match port.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(df_err(key, format!("`{port}` is not a port"))),
        }
        out.insert(
            format!("traefik.http.services.{base}.loadbalancer.server.port"),
            port.clone(),
        );
    } else {
        // The service exists even without a port label: the exposed port fills it in.
        out.insert(
            format!("traefik.http.services.{base}.loadbalancer.server.scheme"),
            "http".to_string(),
        );
    }
    let mut chain = Vec::new();
    if let Some(m) = https_only(p, index, &base, out)? {
        chain.push(m);
    }
    if let Some(a) = auth {
        chain.push(a.to_string());
    }
    chain.extend(rewrites(p, index, &base, out)?);
    if !chain.is_empty() {
        out.insert(router("middlewares"), chain.join(","));
    }
    Ok(())
}

fn suffix(index: u32) -> String {
    if index == 0 {
        String::new()
    } else {
        format!(".{index}")
    }
}

/// `httpsOnly` (+ `httpsRedirectCode`): a redirectScheme middleware.
fn https_only(
    p: &Params,
    index: u32,
    base: &str,
    out: &mut BTreeMap<String, String>,
) -> Result<Option<String>, DfError> {
    let Some((key, value)) = p.get("httpsOnly", index) else {
        return Ok(None);
    };
    if !parse_bool(key, value)? {
        return Ok(None);
    }
    let permanent = match p.get("httpsRedirectCode", index) {
        None => false,
        Some((_, c)) if c == "302" || c == "307" => false,
        Some((_, c)) if c == "301" || c == "308" => true,
        Some((k, c)) => {
            return Err(df_err(
                k,
                format!("`{c}` is not a redirect code (301, 302, 307, 308)"),
            ))
        }
    };
    let m = format!("{base}-https");
    let mw = |f: &str| format!("traefik.http.middlewares.{m}.redirectscheme.{f}");
    out.insert(mw("scheme"), "https".to_string());
    out.insert(mw("permanent"), permanent.to_string());
    Ok(Some(m))
}

/// `reqPathSearchReplace` (`search,replace[:search,replace…]`): a replacePathRegex
/// middleware per pair, in order; HAProxy's `\1` back-references become `${1}`.
fn rewrites(
    p: &Params,
    index: u32,
    base: &str,
    out: &mut BTreeMap<String, String>,
) -> Result<Vec<String>, DfError> {
    let Some((key, value)) = p.get("reqPathSearchReplace", index) else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for (n, pair) in value.split(':').enumerate() {
        let (search, replace) = pair
            .split_once(',')
            .ok_or_else(|| df_err(key, format!("`{pair}` is not SEARCH,REPLACE")))?;
        if search.is_empty() {
            return Err(df_err(key, format!("`{pair}` has an empty search")));
        }
        let m = format!("{base}-rewrite-{}", n + 1);
        let mw = |f: &str| format!("traefik.http.middlewares.{m}.replacepathregex.{f}");
        out.insert(mw("regex"), search.to_string());
        out.insert(mw("replacement"), backrefs(replace));
        names.push(m);
    }
    Ok(names)
}

/// `\1` → `${1}` (Go's and Rust's replacement syntax); a literal `$` is doubled.
fn backrefs(replace: &str) -> String {
    let mut out = String::new();
    let mut chars = replace.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                let d = chars.next().unwrap_or('0');
                out.push_str(&format!("${{{d}}}"));
            }
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    out
}

/// `users` (+ `usersPassEncrypted`): a basicAuth middleware shared by the destinations.
fn users(
    p: &Params,
    name: &str,
    out: &mut BTreeMap<String, String>,
) -> Result<Option<String>, DfError> {
    let Some((key, value)) = p.get("users", 0) else {
        return Ok(None);
    };
    let encrypted = match p.get("usersPassEncrypted", 0) {
        Some((k, v)) => parse_bool(k, v)?,
        None => false,
    };
    let mut entries = Vec::new();
    for credential in list(value) {
        let (user, pass) = credential
            .split_once(':')
            .filter(|(u, p)| !u.is_empty() && !p.is_empty())
            .ok_or_else(|| {
                df_err(
                    key,
                    format!(
                        "`{}` is not USER:PASSWORD (passwords from a secret or the proxy's \
                         environment are not supported)",
                        credential.split(':').next().unwrap_or_default()
                    ),
                )
            })?;
        let hash = if encrypted {
            pass.to_string()
        } else {
            let digest = sha1::Sha1::digest(pass.as_bytes());
            format!(
                "{{SHA}}{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        };
        entries.push(format!("{user}:{hash}"));
    }
    let m = format!("{name}-df-auth");
    out.insert(
        format!("traefik.http.middlewares.{m}.basicauth.users"),
        entries.join(","),
    );
    Ok(Some(m))
}

#[cfg(test)]
#[path = "dfproxy_tests.rs"]
mod tests;
