//! `aigw run`: compile manifests in process and hand the table to the data plane, with the
//! values of the Secrets given alongside (local use only: they never reach an artifact), and
//! recompile when the manifests change. With no manifests, a configuration is built from the
//! environment as the reference's `aigw run` does.

use crate::{CheckOptions, Checked, check};
use aigw_proxy::reload::Source;
use aigw_proxy::secrets::{Key, Secrets};
use aigw_syntax::Kind;
use base64::Engine;
use bytes::Bytes;
use std::path::PathBuf;

/// The routing table of a checked input without errors.
pub fn table(checked: &Checked) -> Result<aigw_table::Snapshot, String> {
    let ir = checked
        .ir
        .as_ref()
        .filter(|_| !checked.has_errors())
        .ok_or("the manifests have errors")?;
    aigw_table::Snapshot::new(aigw_target_table::table(ir))
        .map_err(|e| format!("the compiled table was refused: {e}"))
}

/// The values of the Secret objects in the input: `data` (base64) and `stringData` (which wins,
/// as in Kubernetes).
pub fn secret_values(checked: &Checked) -> Vec<(Key, Bytes)> {
    let Some(ir) = &checked.ir else {
        return Vec::new();
    };
    let mut values = Vec::new();
    for (_, secret) in ir.objects(Kind::Secret) {
        let key = |k: &str| (secret.namespace.clone(), secret.name.clone(), k.to_owned());
        if let Some(aigw_syntax::yaml::Value::Map(entries)) =
            secret.origin.node_at("data").map(|n| &n.value)
        {
            for (name, node) in entries {
                let decoded = node.as_str().and_then(|text| {
                    base64::engine::general_purpose::STANDARD
                        .decode(text.trim())
                        .ok()
                });
                if let Some(bytes) = decoded {
                    values.push((key(&name.name), Bytes::from(bytes)));
                }
            }
        }
        if let Some(aigw_syntax::yaml::Value::Map(entries)) =
            secret.origin.node_at("stringData").map(|n| &n.value)
        {
            for (name, node) in entries {
                if let Some(text) = node.as_str() {
                    values.push((key(&name.name), Bytes::from(text.to_owned())));
                }
            }
        }
    }
    values
}

/// Manifests on disk (or text built from the environment), checked and compiled on every load.
#[derive(Debug)]
pub struct Manifests {
    pub paths: Vec<PathBuf>,
    /// Used instead of `paths` when set (the environment's configuration).
    pub text: Option<String>,
    pub secrets_dir: Option<PathBuf>,
    pub options: CheckOptions,
    /// Secret values known besides the manifests' own (the environment's API keys).
    pub inline: Vec<(Key, Bytes)>,
}

impl Manifests {
    /// The manifests checked, or their errors rendered.
    fn checked(&self) -> Result<Checked, String> {
        let sources = match &self.text {
            Some(text) => {
                let mut map = aigw_diag::SourceMap::new();
                map.add("(environment)", text.as_str());
                map
            }
            None => crate::inputs::read_inputs(&self.paths).map_err(|e| e.to_string())?,
        };
        let mut checked = check(sources, self.options);
        // Serving nothing is a mistake, and a reload to nothing would drop every route.
        checked.require_objects();
        if checked.has_errors() {
            let errors: Vec<_> = checked
                .diagnostics
                .iter()
                .filter(|d| d.severity() == aigw_diag::Severity::Error)
                .cloned()
                .collect();
            let text = aigw_diag::render_text(
                &errors,
                &checked.sources,
                aigw_diag::RenderOptions { color: false },
            );
            return Err(format!("the manifests have errors:\n{text}"));
        }
        Ok(checked)
    }

    /// The Envoy bootstrap of the manifests, its external processor at `extproc` (`aigw run
    /// --envoy`).
    pub fn bootstrap(&self, extproc: std::net::SocketAddr) -> Result<String, String> {
        let checked = self.checked()?;
        let mut options = extproc_options(&aigw_proxy::extproc::Listen::Tcp(extproc));
        if let Some(dir) = &self.secrets_dir {
            options.secrets_dir = dir.display().to_string();
        }
        let artifacts =
            crate::compile::artifacts_with(&checked, &[crate::compile::Target::Envoy], &options)
                .map_err(|e| e.to_string())?;
        artifacts
            .into_iter()
            .find(|a| a.name == "envoy.yaml")
            .map(|a| String::from_utf8_lossy(&a.bytes).into_owned())
            .ok_or_else(|| "no Envoy bootstrap was made".to_owned())
    }
}

impl Source for Manifests {
    fn load(&self) -> Result<(aigw_table::Snapshot, Secrets), String> {
        let checked = self.checked()?;
        let snapshot = table(&checked)?;
        let secrets = Secrets::from_environment()
            .with_dir(self.secrets_dir.clone())
            .with_inline(self.inline.iter().cloned())
            .with_inline(secret_values(&checked));
        Ok((snapshot, secrets))
    }

    /// The manifests, and the mounted Secrets: a rotated key is a reload.
    fn watched(&self) -> Vec<PathBuf> {
        let mut paths = self.paths.clone();
        paths.extend(self.secrets_dir.clone());
        paths
    }
}

/// The Envoy target's options for a processor at `listen`.
pub fn extproc_options(listen: &aigw_proxy::extproc::Listen) -> aigw_target_envoy::Options {
    let (extproc_host, extproc_port) = match listen {
        aigw_proxy::extproc::Listen::Tcp(addr) => (addr.ip().to_string(), addr.port()),
        aigw_proxy::extproc::Listen::Unix(path) => (format!("unix:{}", path.display()), 0),
    };
    aigw_target_envoy::Options {
        extproc_host,
        extproc_port,
        ..Default::default()
    }
}

/// The port `aigw run` serves the environment's configuration on (the reference's).
pub const ENVIRONMENT_PORT: u16 = 1975;

/// The configuration the reference's `aigw run` builds from the environment: one Gateway
/// `aigw-run` on port 1975 and one route whose rules send
/// - models matching `claude-.*` to Anthropic (`ANTHROPIC_API_KEY`),
/// - every other model to OpenAI (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, default
///   `https://api.openai.com/v1`), or, without those, to Azure OpenAI (`AZURE_OPENAI_API_KEY`,
///   `AZURE_OPENAI_ENDPOINT`, `OPENAI_API_VERSION`).
///
/// The keys are returned as Secret values, never written into the manifest text (whose
/// diagnostics could quote it).
pub fn environment(
    var: impl Fn(&str) -> Option<String>,
) -> Result<(String, Vec<(Key, Bytes)>), String> {
    let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let mut docs = vec![format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: aigw-run\n  namespace: default\nspec:\n  gatewayClassName: aigw-run\n  listeners:\n    - name: http\n      protocol: HTTP\n      port: {ENVIRONMENT_PORT}\n"
    )];
    let mut secrets = Vec::new();
    let mut rules = String::new();
    let mut add = |name: &str,
                   schema: &str,
                   url: &str,
                   key: Option<(String, &str)>,
                   matches: Option<&str>,
                   version: Option<String>|
     -> Result<(), String> {
        let url: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
        let host = url
            .host()
            .ok_or_else(|| format!("`{url}` has no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let tls = url.scheme_str() == Some("https");
        let port = url.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let prefix = url.path().trim_matches('/');
        let endpoint = if host.parse::<std::net::IpAddr>().is_ok() {
            format!("ip:\n          address: {host}")
        } else {
            format!("fqdn:\n          hostname: {host}")
        };
        let mut schema_text = format!("    name: {schema}\n");
        if !prefix.is_empty() {
            schema_text.push_str(&format!("    prefix: {prefix}\n"));
        }
        if let Some(version) = version {
            schema_text.push_str(&format!("    version: \"{version}\"\n"));
        }
        docs.push(format!("apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  schema:\n{schema_text}  backendRef:\n    name: {name}\n    kind: Backend\n    group: gateway.envoyproxy.io\n"));
        docs.push(format!("apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  endpoints:\n    - {endpoint}\n          port: {port}\n"));
        if tls {
            docs.push(format!("apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata:\n  name: {name}-tls\n  namespace: default\nspec:\n  targetRefs:\n    - group: gateway.envoyproxy.io\n      kind: Backend\n      name: {name}\n  validation:\n    wellKnownCACertificates: System\n    hostname: {host}\n"));
        }
        if let Some((value, policy)) = key {
            let field = match policy {
                "AzureAPIKey" => "azureAPIKey",
                "AnthropicAPIKey" => "anthropicAPIKey",
                _ => "apiKey",
            };
            docs.push(format!("apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: BackendSecurityPolicy\nmetadata:\n  name: {name}-key\n  namespace: default\nspec:\n  type: {policy}\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: {name}\n  {field}:\n    secretRef:\n      name: {name}-key\n"));
            secrets.push((
                (
                    "default".to_owned(),
                    format!("{name}-key"),
                    "apiKey".to_owned(),
                ),
                Bytes::from(value),
            ));
        }
        rules.push_str("    - ");
        if let Some(pattern) = matches {
            rules.push_str(&format!("matches:\n        - headers:\n            - type: RegularExpression\n              name: x-ai-eg-model\n              value: \"{pattern}\"\n      "));
        }
        rules.push_str(&format!("backendRefs:\n        - name: {name}\n"));
        Ok(())
    };
    if let Some(key) = var("ANTHROPIC_API_KEY") {
        add(
            "anthropic",
            "Anthropic",
            "https://api.anthropic.com",
            Some((key, "AnthropicAPIKey")),
            Some("claude-.*"),
            None,
        )?;
    }
    let openai_url = var("OPENAI_BASE_URL");
    let openai_key = var("OPENAI_API_KEY");
    if openai_url.is_some() || openai_key.is_some() {
        let url = openai_url.unwrap_or_else(|| "https://api.openai.com/v1".to_owned());
        add(
            "openai",
            "OpenAI",
            &url,
            openai_key.map(|k| (k, "APIKey")),
            None,
            None,
        )?;
    } else if let (Some(key), Some(endpoint)) =
        (var("AZURE_OPENAI_API_KEY"), var("AZURE_OPENAI_ENDPOINT"))
    {
        let version = var("OPENAI_API_VERSION").unwrap_or_else(|| "2025-01-01-preview".to_owned());
        add(
            "azure-openai",
            "AzureOpenAI",
            &endpoint,
            Some((key, "AzureAPIKey")),
            None,
            Some(version),
        )?;
    }
    if rules.is_empty() {
        return Err("no manifests given and no provider configured in the environment: set OPENAI_API_KEY and/or OPENAI_BASE_URL, AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT, or ANTHROPIC_API_KEY".to_owned());
    }
    docs.push(format!("apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nmetadata:\n  name: aigw-run\n  namespace: default\nspec:\n  parentRefs:\n    - name: aigw-run\n  rules:\n{rules}"));
    Ok((docs.join("---\n"), secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<aigw_table::Snapshot, String> {
        let (text, secrets) = environment(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })?;
        assert!(
            !text.contains("sk-"),
            "no key is written into the manifests:\n{text}"
        );
        assert!(secrets.iter().all(|(_, v)| v.starts_with(b"sk-")));
        let source = Manifests {
            paths: Vec::new(),
            text: Some(text),
            secrets_dir: None,
            options: CheckOptions::default(),
            inline: secrets,
        };
        source.load().map(|(snapshot, _)| snapshot)
    }

    #[test]
    fn the_environment_configures_a_local_ollama_openai_azure_and_anthropic() {
        let ollama = load(&[("OPENAI_BASE_URL", "http://localhost:11434/v1")]).expect("ollama");
        let backend = &ollama.table().backends[0];
        assert_eq!(
            (
                backend.schema.name.as_str(),
                backend.schema.prefix.as_deref(),
                backend.tls.is_none()
            ),
            ("OpenAI", Some("v1"), true)
        );
        assert_eq!(
            backend.endpoints,
            vec![aigw_table::Endpoint::Fqdn {
                hostname: "localhost".into(),
                port: 11434
            }]
        );
        assert_eq!(
            ollama.table().gateways[0].listeners[0].port,
            ENVIRONMENT_PORT
        );

        let both = load(&[
            ("OPENAI_API_KEY", "sk-openai"),
            ("ANTHROPIC_API_KEY", "sk-ant"),
        ])
        .expect("both");
        let names: Vec<&str> = both
            .table()
            .backends
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(names, ["default/anthropic", "default/openai"]);
        assert!(
            both.table()
                .backends
                .iter()
                .all(|b| b.tls.is_some() && b.auth.is_some())
        );

        let azure = load(&[
            ("AZURE_OPENAI_API_KEY", "sk-az"),
            ("AZURE_OPENAI_ENDPOINT", "https://x.openai.azure.com"),
        ])
        .expect("azure");
        assert_eq!(azure.table().backends[0].schema.name, "AzureOpenAI");
        assert!(load(&[]).is_err(), "nothing configured is an error");
    }
}
