//! YAML for people: the route status documents and `meshroute compile --format envoy-rds`.
//! (Envoy's resource files are JSON, which it parses several times faster; see
//! `envoy::resource_file`.)

use serde_json::Value;
use yaml_rust2::yaml::{Hash, Yaml};
use yaml_rust2::YamlEmitter;

/// Renders `value` as a YAML document, with a comment header.
pub fn to_yaml(header: &str, value: &Value) -> Result<String, yaml_rust2::EmitError> {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    YamlEmitter::new(&mut out).dump(&convert(value))?;
    out.push('\n');
    Ok(out)
}

fn convert(value: &Value) -> Yaml {
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(convert).collect()),
        Value::Object(fields) => {
            let mut hash = Hash::new();
            for (key, field) in fields {
                hash.insert(Yaml::String(key.clone()), convert(field));
            }
            Yaml::Hash(hash)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_that_look_like_other_things_stay_strings() {
        let value = json!({"@type": "x", "timeout": "0s", "n": "80", "b": "true", "name": "outbound|80||a.b.svc.cluster.local", "port": 80});
        let text = to_yaml("head", &value).unwrap_or_default();
        let parsed = yaml_rust2::YamlLoader::load_from_str(&text).unwrap_or_default();
        let doc = &parsed[0];
        assert_eq!(doc["@type"].as_str(), Some("x"));
        assert_eq!(doc["n"].as_str(), Some("80"));
        assert_eq!(doc["b"].as_str(), Some("true"));
        assert_eq!(doc["timeout"].as_str(), Some("0s"));
        assert_eq!(doc["name"].as_str(), Some("outbound|80||a.b.svc.cluster.local"));
        assert_eq!(doc["port"].as_i64(), Some(80));
        assert!(text.starts_with("# head\n---\n"));
    }

    #[test]
    fn json_text_inside_a_string_survives() {
        let table = r#"{"version":2,"frontends":[{"name":"a\"b"}]}"#;
        let text = to_yaml("", &json!({"value": table})).unwrap_or_default();
        let parsed = yaml_rust2::YamlLoader::load_from_str(&text).unwrap_or_default();
        assert_eq!(parsed[0]["value"].as_str(), Some(table));
    }
}
