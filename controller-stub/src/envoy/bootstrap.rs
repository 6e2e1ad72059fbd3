//! The local bootstraps: from files (`envoy-config/local-bootstrap.yaml`), or over ADS from
//! `meshroute serve` (`envoy-config/local-ads-bootstrap.yaml`, `sync --xds`).

use std::collections::BTreeMap;

/// The template, with `{{name}}` placeholders documented at its top.
pub const TEMPLATE: &str = include_str!("../../../envoy-config/local-bootstrap.yaml");

/// What fills the template's placeholders.
pub struct BootstrapValues<'a> {
    pub node_id: &'a str,
    pub node_cluster: &'a str,
    pub admin_port: u16,
    pub lds_path: &'a str,
    pub cds_path: &'a str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("bootstrap template: unknown placeholder {{{{{0}}}}}")]
    Unknown(String),
    #[error("bootstrap template: unterminated placeholder")]
    Unterminated,
}

/// Fills every `{{name}}` of the template; strings are written as quoted YAML scalars, so any
/// path is safe. Placeholders inside comments (`#` lines) are left as they are.
pub fn render(values: &BootstrapValues) -> Result<String, TemplateError> {
    render_template(TEMPLATE, values)
}

pub fn render_template(template: &str, values: &BootstrapValues) -> Result<String, TemplateError> {
    fill(
        template,
        &BTreeMap::from([
            ("node_id", quoted(values.node_id)),
            ("node_cluster", quoted(values.node_cluster)),
            ("admin_port", values.admin_port.to_string()),
            ("lds_path", quoted(values.lds_path)),
            ("cds_path", quoted(values.cds_path)),
        ]),
    )
}

/// The ADS template, with `{{name}}` placeholders documented at its top.
pub const ADS_TEMPLATE: &str = include_str!("../../../envoy-config/local-ads-bootstrap.yaml");

/// What fills the ADS template's placeholders.
pub struct AdsBootstrapValues<'a> {
    pub node_id: &'a str,
    pub node_cluster: &'a str,
    pub namespace: &'a str,
    pub admin_port: u16,
    pub xds: std::net::SocketAddr,
}

/// The bootstrap of an Envoy configured by `meshroute serve` at `values.xds`.
pub fn render_ads(values: &AdsBootstrapValues) -> Result<String, TemplateError> {
    fill(
        ADS_TEMPLATE,
        &BTreeMap::from([
            ("node_id", quoted(values.node_id)),
            ("node_cluster", quoted(values.node_cluster)),
            ("namespace", quoted(values.namespace)),
            ("admin_port", values.admin_port.to_string()),
            ("xds_address", quoted(&values.xds.ip().to_string())),
            ("xds_port", values.xds.port().to_string()),
        ]),
    )
}

fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn fill(template: &str, filled: &BTreeMap<&str, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    for line in template.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(TemplateError::Unterminated)?;
            let key = after[..end].trim();
            let value = filled.get(key).ok_or_else(|| TemplateError::Unknown(key.to_owned()))?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
    }
    Ok(out)
}
