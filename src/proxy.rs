//! Which proxy a client connection uses: the same environment variables and
//! `proxyOptions` semantics as Node-RED core (strict and legacy modes).

/// Node-RED's `settings.proxyOptions` (and `NR_PROXY_MODE`).
#[derive(Clone, Debug, Default)]
pub struct ProxyOptions {
    pub legacy: bool,
    pub lower_case_only: bool,
    pub favour_upper_case: bool,
    pub exclude_npm: bool,
}

/// The proxy URL for `scheme://host:port`, if any. `env` looks a variable up.
pub fn proxy_for(
    scheme: &str,
    host: &str,
    port: u16,
    url: &str,
    opts: &ProxyOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    if opts.legacy {
        return legacy(url, env);
    }
    let get = |key: &str| lookup(key, opts, env);
    if !should_proxy(&host.to_ascii_lowercase(), port, &get) {
        return None;
    }
    let proxy = [
        format!("npm_config_{scheme}_proxy"),
        format!("{scheme}_proxy"),
        "npm_config_proxy".into(),
        "all_proxy".into(),
    ]
    .iter()
    .find_map(|k| get(k))?;
    Some(if proxy.contains("://") { proxy } else { format!("{scheme}://{proxy}") })
}

fn lookup(key: &str, opts: &ProxyOptions, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if opts.exclude_npm && key.starts_with("npm_config_") {
        return None;
    }
    let (lower, upper) = (key.to_ascii_lowercase(), key.to_ascii_uppercase());
    let order: &[&str] = if opts.lower_case_only {
        &[&lower]
    } else if opts.favour_upper_case {
        &[&upper, &lower]
    } else {
        &[&lower, &upper]
    };
    order.iter().find_map(|k| env(k).filter(|v| !v.is_empty()))
}

fn should_proxy(host: &str, port: u16, get: &dyn Fn(&str) -> Option<String>) -> bool {
    let Some(no_proxy) = get("npm_config_no_proxy").or_else(|| get("no_proxy")) else {
        return true;
    };
    let no_proxy = no_proxy.to_ascii_lowercase();
    if no_proxy == "*" {
        return false;
    }
    no_proxy.split([',', ' ', '\t', '\n']).filter(|e| !e.is_empty()).all(|entry| {
        let (name, entry_port) = match entry.rsplit_once(':') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (n, p.parse::<u32>().ok())
            }
            _ => (entry, None),
        };
        if entry_port.is_some_and(|p| p != 0 && p != u32::from(port)) {
            return true;
        }
        match name.as_bytes()[0] {
            b'.' => !host.ends_with(name),
            b'*' => !host.ends_with(&name[1..]),
            _ => host != name,
        }
    })
}

fn legacy(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let proxy = env("HTTP_PROXY").or_else(|| env("http_proxy")).filter(|p| !p.is_empty())?;
    let Some(no_proxy) = env("NO_PROXY").or_else(|| env("no_proxy")).filter(|v| !v.is_empty()) else {
        return Some(proxy);
    };
    let excluded = no_proxy.split(',').map(str::trim).any(|e| url.contains(e));
    (!excluded).then_some(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| m.get(k).cloned()
    }

    fn strict(pairs: &[(&str, &str)], host: &str, port: u16) -> Option<String> {
        proxy_for("ws", host, port, "", &ProxyOptions::default(), &env(pairs))
    }

    #[test]
    fn scheme_specific_then_general_variables() {
        assert_eq!(strict(&[("ws_proxy", "p:3128")], "h", 80), Some("ws://p:3128".into()));
        assert_eq!(strict(&[("ALL_PROXY", "http://a:1")], "h", 80), Some("http://a:1".into()));
        assert_eq!(strict(&[("http_proxy", "http://a:1")], "h", 80), None, "strict mode ignores http_proxy for ws://");
        assert_eq!(strict(&[], "h", 80), None);
    }

    #[test]
    fn no_proxy_matching() {
        let p = ("ws_proxy", "http://p:1");
        assert_eq!(strict(&[p, ("no_proxy", "*")], "h", 80), None);
        assert_eq!(strict(&[p, ("no_proxy", "h")], "h", 80), None);
        assert_eq!(strict(&[p, ("no_proxy", ".example.com")], "a.example.com", 80), None);
        assert_eq!(strict(&[p, ("no_proxy", "*.example.com")], "a.example.com", 80), None);
        assert_eq!(strict(&[p, ("no_proxy", "h:81")], "h", 80), Some("http://p:1".into()));
        assert_eq!(strict(&[p, ("NO_PROXY", "other, h:80")], "h", 80), None);
    }

    #[test]
    fn case_options_and_legacy() {
        let both = [("ws_proxy", "http://lower:1"), ("WS_PROXY", "http://upper:1")];
        let up = ProxyOptions { favour_upper_case: true, ..Default::default() };
        assert_eq!(proxy_for("ws", "h", 80, "", &up, &env(&both)), Some("http://upper:1".into()));
        let lower = ProxyOptions { lower_case_only: true, ..Default::default() };
        assert_eq!(proxy_for("ws", "h", 80, "", &lower, &env(&[("WS_PROXY", "http://u:1")])), None);
        let legacy = ProxyOptions { legacy: true, ..Default::default() };
        let e = env(&[("http_proxy", "http://l:1"), ("no_proxy", "skip.me")]);
        assert_eq!(proxy_for("ws", "h", 80, "ws://h/x", &legacy, &e), Some("http://l:1".into()));
        assert_eq!(proxy_for("ws", "h", 80, "ws://skip.me/x", &legacy, &e), None);
        let no_exclusions = env(&[("http_proxy", "http://l:1")]);
        assert_eq!(proxy_for("ws", "h", 80, "ws://h/x", &legacy, &no_exclusions), Some("http://l:1".into()));
    }
}
