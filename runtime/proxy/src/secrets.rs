//! Where secret values come from at run time. The table names Secrets by namespace, name and
//! key; this module finds their values, in order:
//! 1. Secret objects given with the manifests (`aigw run` on local files),
//! 2. a directory in the Kubernetes-mounted layout, `<dir>/<namespace>/<name>/<key>`,
//! 3. the environment, `AIGW_SECRET_<NAMESPACE>_<NAME>_<KEY>`, upper-cased, every character
//!    other than a letter or digit written as `_` (so `default/openai-key` key `apiKey` is
//!    `AIGW_SECRET_DEFAULT_OPENAI_KEY_APIKEY`).
//!
//! A value that none of them has is an error naming the reference, never its value. Values
//! are held as `Bytes` and never logged or formatted (`Debug` prints only the references).

use aigw_table::SecretRef;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A reference to one key of a Secret (or ConfigMap).
pub type Key = (String, String, String);

/// The places secret values are looked up in.
#[derive(Clone, Default)]
pub struct Secrets {
    inline: BTreeMap<Key, Bytes>,
    dir: Option<PathBuf>,
    environment: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .inline
            .keys()
            .map(|(ns, name, key)| format!("{ns}/{name}/{key}"))
            .collect();
        f.debug_struct("Secrets")
            .field("inline", &keys)
            .field("dir", &self.dir)
            .field("environment", &self.environment)
            .finish()
    }
}

/// A referenced secret that could not be found (the message names it, never a value).
#[derive(Clone, Debug, thiserror::Error)]
#[error("secret `{namespace}/{name}` key `{key}` was not found (looked in: {places})")]
pub struct Missing {
    pub namespace: String,
    pub name: String,
    pub key: String,
    pub places: String,
}

/// A Secret none of the places has (the message names it, never a value).
#[derive(Clone, Debug, thiserror::Error)]
#[error("secret `{namespace}/{name}` was not found (looked in: {places})")]
pub struct MissingObject {
    pub namespace: String,
    pub name: String,
    pub places: String,
}

impl Secrets {
    /// Looks only in the environment.
    pub fn from_environment() -> Self {
        Secrets {
            environment: true,
            ..Secrets::default()
        }
    }

    /// Adds values given with the manifests (they win over the other places).
    pub fn with_inline(mut self, values: impl IntoIterator<Item = (Key, Bytes)>) -> Self {
        self.inline.extend(values);
        self
    }

    /// Adds a mounted-Secrets directory.
    pub fn with_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.dir = dir;
        self
    }

    /// The mounted-Secrets directory, when there is one.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// The value of `reference`.
    pub fn get(&self, reference: &SecretRef) -> Result<Bytes, Missing> {
        self.lookup(&reference.namespace, &reference.name, &reference.key)
    }

    /// The value of key `key` of the object `namespace/name`.
    pub fn lookup(&self, namespace: &str, name: &str, key: &str) -> Result<Bytes, Missing> {
        let wanted = (namespace.to_owned(), name.to_owned(), key.to_owned());
        if let Some(value) = self.inline.get(&wanted) {
            return Ok(value.clone());
        }
        if let Some(dir) = &self.dir
            && let Ok(value) = std::fs::read(dir.join(namespace).join(name).join(key))
        {
            return Ok(Bytes::from(value));
        }
        if self.environment
            && let Some(value) = std::env::var_os(environment_name(namespace, name, key))
        {
            return Ok(Bytes::from(value.into_encoded_bytes()));
        }
        Err(Missing {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
            places: self.places(),
        })
    }

    /// Every key of the object `namespace/name` with its value, sorted by key: the Secrets
    /// given with the manifests, else the mounted directory (its hidden `..data` entries left
    /// out). The environment cannot list a Secret's keys, so it is not looked in.
    pub fn all(&self, namespace: &str, name: &str) -> Result<Vec<(String, Bytes)>, MissingObject> {
        let inline: Vec<(String, Bytes)> = self
            .inline
            .iter()
            .filter(|((ns, n, _), _)| ns == namespace && n == name)
            .map(|((_, _, key), value)| (key.clone(), value.clone()))
            .collect();
        if !inline.is_empty() {
            return Ok(inline);
        }
        if let Some(dir) = &self.dir
            && let Ok(entries) = std::fs::read_dir(dir.join(namespace).join(name))
        {
            let mut found = Vec::new();
            for entry in entries.flatten() {
                let key = entry.file_name().to_string_lossy().into_owned();
                if key.starts_with('.') || !entry.path().is_file() {
                    continue;
                }
                if let Ok(value) = std::fs::read(entry.path()) {
                    found.push((key, Bytes::from(value)));
                }
            }
            found.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(found);
        }
        Err(MissingObject {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            places: self.places(),
        })
    }

    fn places(&self) -> String {
        let mut places = Vec::new();
        if !self.inline.is_empty() {
            places.push("the Secrets given with the manifests".to_owned());
        }
        if let Some(dir) = &self.dir {
            places.push(format!("{}", dir.display()));
        }
        if self.environment {
            places.push("the environment (AIGW_SECRET_*)".to_owned());
        }
        if places.is_empty() {
            places.push("nowhere: no Secrets, --secrets-dir or environment given".to_owned());
        }
        places.join(", ")
    }
}

/// The environment variable that holds `namespace/name` key `key`.
pub fn environment_name(namespace: &str, name: &str, key: &str) -> String {
    let part = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    format!(
        "AIGW_SECRET_{}_{}_{}",
        part(namespace),
        part(name),
        part(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_in_order_and_a_missing_one_is_named_without_values() {
        let dir = std::env::temp_dir().join(format!("aigw-secrets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("default/key")).expect("dir");
        std::fs::write(dir.join("default/key/apiKey"), "from-dir").expect("write");
        let inline = [(
            (
                "default".to_owned(),
                "other".to_owned(),
                "apiKey".to_owned(),
            ),
            Bytes::from_static(b"from-manifest"),
        )];
        let secrets = Secrets::default()
            .with_inline(inline)
            .with_dir(Some(dir.clone()));
        assert_eq!(
            secrets.lookup("default", "key", "apiKey").expect("dir"),
            "from-dir"
        );
        assert_eq!(
            secrets
                .lookup("default", "other", "apiKey")
                .expect("inline"),
            "from-manifest"
        );
        let missing = secrets
            .lookup("prod", "key", "apiKey")
            .expect_err("missing");
        let text = missing.to_string();
        assert!(
            text.contains("`prod/key` key `apiKey`") && text.contains(&dir.display().to_string()),
            "{text}"
        );
        assert!(
            !format!("{secrets:?}").contains("from-manifest"),
            "Debug never shows values"
        );
        std::fs::remove_dir_all(dir).expect("clean up");
        assert_eq!(
            environment_name("default", "openai-key", "apiKey"),
            "AIGW_SECRET_DEFAULT_OPENAI_KEY_APIKEY"
        );
    }
}
