//! `aigw deploy render`: the install manifests of aigw on Kubernetes (namespace, service
//! accounts, least-privilege RBAC, the controller and data-plane Deployments and Services,
//! PodDisruptionBudgets), rendered from the minijinja template `templates/install.yaml.j2`
//! with the values of `values.yaml`, a user's values file merged over them.
//!
//! `values.yaml` is the one source of the values and their defaults. A user's file is checked
//! against it before rendering: every key must be one of the defaults' (a list's items are
//! checked against [`ITEM_SHAPES`]), and every value must have its default's type; a mistake
//! is an error naming the value's path, never a manifest silently rendered without it. The
//! render itself is strict as well (an undefined variable fails it), and deterministic.
//!
//! Pure: the binary reads the file and writes the output.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{Map, Value};

/// The template.
pub const TEMPLATE: &str = include_str!("../templates/install.yaml.j2");
/// The default values, with a comment on each.
pub const DEFAULT_VALUES: &str = include_str!("../values.yaml");

/// The shape of the items of lists whose default is empty: each key with a sample value of its
/// type (a string item is `""`).
pub const ITEM_SHAPES: &[(&str, &str)] = &[
    ("image.pullSecrets", r#""""#),
    ("controller.watchNamespaces", r#""""#),
    ("dataPlane.secrets", r#"{"name": ""}"#),
];

/// Why values could not be used or the manifests not rendered.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{file}: {reason}")]
    Yaml { file: String, reason: String },
    #[error("{file}: `{path}` is not a value of aigw deploy render (see `aigw deploy values`)")]
    Unknown { file: String, path: String },
    #[error("{file}: `{path}` must be {want}, not {got}")]
    Type {
        file: String,
        path: String,
        want: &'static str,
        got: &'static str,
    },
    #[error("the template failed: {0}")]
    Render(String),
}

/// The defaults with `overrides` (the text of a values file named `file`) merged over them.
pub fn values(overrides: Option<(&str, &str)>) -> Result<Value, DeployError> {
    let mut values = parse("values.yaml", DEFAULT_VALUES)?;
    if let Some((file, text)) = overrides {
        let user = parse(file, text)?;
        if !user.is_null() {
            check(file, "", &values, &user)?;
            merge(&mut values, user);
        }
    }
    Ok(values)
}

/// Renders the manifests with `values`.
pub fn render(values: &Value) -> Result<String, DeployError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| DeployError::Render(format!("{e:#}")))?;
    env.set_syntax(syntax);
    // YAML is not HTML: nothing is escaped (quoting is the template's, through `tojson`).
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_template("install.yaml.j2", TEMPLATE)
        .map_err(|e| DeployError::Render(format!("{e:#}")))?;
    let template = env
        .get_template("install.yaml.j2")
        .map_err(|e| DeployError::Render(format!("{e:#}")))?;
    template
        .render(minijinja::Value::from(minijinja::value::Serde(values)))
        .map_err(|e| DeployError::Render(format!("{e:#}")))
}

fn parse(file: &str, text: &str) -> Result<Value, DeployError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str(text).map_err(|e| DeployError::Yaml {
        file: file.to_owned(),
        reason: e.to_string(),
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Checks `user` (at `path`) against the default `base`: same types, known keys only.
fn check(file: &str, path: &str, base: &Value, user: &Value) -> Result<(), DeployError> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (base, user) {
        (Value::Object(base), Value::Object(user)) => {
            for (key, value) in user {
                let Some(default) = base.get(key) else {
                    return Err(DeployError::Unknown {
                        file: file.to_owned(),
                        path: join(key),
                    });
                };
                check(file, &join(key), default, value)?;
            }
            Ok(())
        }
        (Value::Array(base), Value::Array(user)) => {
            let shape = base.first().cloned().or_else(|| item_shape(path));
            for (i, item) in user.iter().enumerate() {
                if let Some(shape) = &shape {
                    check(file, &format!("{path}[{i}]"), shape, item)?;
                }
            }
            Ok(())
        }
        (base, user) if kind(base) == kind(user) => Ok(()),
        (base, user) => Err(DeployError::Type {
            file: file.to_owned(),
            path: path.to_owned(),
            want: kind(base),
            got: kind(user),
        }),
    }
}

fn item_shape(path: &str) -> Option<Value> {
    ITEM_SHAPES
        .iter()
        .find(|(p, _)| *p == path)
        .and_then(|(_, shape)| serde_json::from_str(shape).ok())
}

/// Merges `user` over `base`: maps key by key, anything else replaced whole.
fn merge(base: &mut Value, user: Value) {
    match (base, user) {
        (Value::Object(base), Value::Object(user)) => {
            for (key, value) in user {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// The defaults as a map (for `aigw deploy values`' sibling uses and tests).
pub fn defaults() -> Result<Map<String, Value>, DeployError> {
    match values(None)? {
        Value::Object(map) => Ok(map),
        other => Err(DeployError::Type {
            file: "values.yaml".into(),
            path: String::new(),
            want: "a map",
            got: kind(&other),
        }),
    }
}
