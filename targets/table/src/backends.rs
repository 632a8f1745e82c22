//! Backends of the table: the AIServiceBackends (and InferencePools) that rules reach, each with
//! its endpoints (the Envoy Gateway Backend), upstream TLS (the BackendTLSPolicy on that
//! Backend), auth (the BackendSecurityPolicy, Secrets by reference) and mutations; plus
//! QuotaPolicies, which target backends.

use crate::name;
use aigw_ir::{Edge, Ir, NodeId};
use aigw_syntax::model::{
    ApiSchemaName, BackendSecurityPolicySpec, BodyMutation, HeaderMutation, QuotaDuration,
    QuotaPolicySpec, QuotaValue, RouteBackendRef, SecretObjectReference,
};
use aigw_syntax::{Kind, Object, Spec};
use aigw_table as t;
use std::collections::HashMap;

/// Collects the backends rules refer to, in first-reference order, then sorts them by name.
pub(crate) struct Backends<'a> {
    ir: &'a Ir,
    found: HashMap<NodeId, t::Backend>,
    /// Table references, fixed up to sorted indices in `finish`.
    refs: Vec<NodeId>,
}

impl<'a> Backends<'a> {
    pub(crate) fn new(ir: &'a Ir) -> Self {
        Backends {
            ir,
            found: HashMap::new(),
            refs: Vec::new(),
        }
    }

    /// The table entry for a rule's reference to the backend `id`, with the reference's
    /// settings merged over the backend's. `backend` holds a provisional index until `finish`.
    pub(crate) fn reference(
        &mut self,
        id: NodeId,
        backend_ref: &RouteBackendRef,
    ) -> Option<t::BackendRef> {
        let object = self.ir.object(id)?;
        if !self.found.contains_key(&id) {
            let backend = backend(self.ir, id, object);
            self.found.insert(id, backend);
        }
        let (own_headers, own_body) = match &object.spec {
            Some(Spec::AIServiceBackend(spec)) => {
                (spec.header_mutation.as_ref(), spec.body_mutation.as_ref())
            }
            _ => (None, None),
        };
        self.refs.push(id);
        Some(t::BackendRef {
            backend: self.refs.len() - 1,
            weight: u32::try_from(backend_ref.weight).unwrap_or(0),
            priority: u32::try_from(backend_ref.priority).unwrap_or(0),
            model_name_override: backend_ref
                .model_name_override
                .clone()
                .filter(|m| !m.is_empty()),
            header_mutation: merge_headers(backend_ref.header_mutation.as_ref(), own_headers),
            body_mutation: merge_body(backend_ref.body_mutation.as_ref(), own_body),
        })
    }

    /// The backends sorted by name, and the final index of each node. References handed out by
    /// [`Backends::reference`] are renumbered by [`renumber`].
    pub(crate) fn finish(self) -> (Vec<t::Backend>, HashMap<NodeId, usize>, Vec<NodeId>) {
        // `found` is keyed by node id; sort by the table name for a stable order.
        let mut entries: Vec<(NodeId, t::Backend)> = self.found.into_iter().collect();
        entries.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        (
            entries.into_iter().map(|(_, b)| b).collect(),
            index,
            self.refs,
        )
    }
}

/// Replaces provisional backend indices (positions in `refs`) with final ones.
pub(crate) fn renumber(routes: &mut [t::Route], refs: &[NodeId], index: &HashMap<NodeId, usize>) {
    for backend_ref in routes
        .iter_mut()
        .flat_map(|r| &mut r.rules)
        .flat_map(|r| &mut r.backends)
    {
        backend_ref.backend = refs
            .get(backend_ref.backend)
            .and_then(|id| index.get(id))
            .copied()
            .unwrap_or(usize::MAX);
    }
}

fn backend(ir: &Ir, id: NodeId, object: &Object) -> t::Backend {
    let mut backend = t::Backend {
        name: name(object),
        ..t::Backend::default()
    };
    match &object.spec {
        Some(Spec::AIServiceBackend(spec)) => {
            let name = spec.schema.name;
            // The reference's defaults: OpenAI and Anthropic APIs live under `/v1`.
            let prefix = match name {
                ApiSchemaName::OpenAI | ApiSchemaName::Anthropic => Some(
                    spec.schema
                        .prefix
                        .clone()
                        .unwrap_or_else(|| "v1".to_owned()),
                ),
                _ => spec.schema.prefix.clone(),
            };
            backend.schema = t::Schema {
                name: name.as_str().to_owned(),
                version: spec.schema.version.clone(),
                prefix,
            };
        }
        _ if object.kind == Kind::InferencePool => {
            // Pools serve the OpenAI API (the reference's choice).
            backend.inference_pool = true;
            backend.schema = t::Schema {
                name: "OpenAI".to_owned(),
                version: Some("v1".to_owned()),
                prefix: Some("v1".to_owned()),
            };
        }
        _ => {}
    }
    if let Some((_, upstream)) = ir.targets(id, |e| e == Edge::Upstream).first()
        && let Some(upstream) = ir.object(*upstream)
    {
        backend.upstream = Some(name(upstream));
        backend.endpoints = endpoints(upstream);
        backend.tls = tls(
            ir,
            ir.find(&aigw_ir::Key::object(
                Kind::Backend,
                &upstream.namespace,
                &upstream.name,
            )),
        );
    }
    let policy = ir
        .sources(id, |e| e == Edge::Targets)
        .into_iter()
        .filter_map(|(_, p)| ir.object(p))
        .find(|p| p.kind == Kind::BackendSecurityPolicy);
    backend.auth = match policy {
        Some(p) => match &p.spec {
            Some(Spec::BackendSecurityPolicy(spec)) => auth(p, spec),
            _ => None,
        },
        None => match &object.spec {
            Some(Spec::AIServiceBackend(spec)) => {
                crate::ambient::auth(spec.schema.name, &backend.endpoints)
            }
            _ => None,
        },
    };
    backend
}

pub(crate) fn endpoints(upstream: &Object) -> Vec<t::Endpoint> {
    let Some(Spec::Backend(spec)) = &upstream.spec else {
        return Vec::new();
    };
    let port = |p: i32| u16::try_from(p).ok();
    spec.endpoints
        .iter()
        .filter_map(|e| {
            if let Some(fqdn) = &e.fqdn {
                Some(t::Endpoint::Fqdn {
                    hostname: fqdn.hostname.clone(),
                    port: port(fqdn.port)?,
                })
            } else if let Some(ip) = &e.ip {
                Some(t::Endpoint::Ip {
                    address: ip.address.clone(),
                    port: port(ip.port)?,
                })
            } else {
                e.unix.as_ref().map(|u| t::Endpoint::Unix {
                    path: u.path.clone(),
                })
            }
        })
        .collect()
}

/// The first BackendTLSPolicy (by name) that targets the Envoy Gateway Backend.
pub(crate) fn tls(ir: &Ir, upstream: Option<NodeId>) -> Option<t::Tls> {
    let policy = ir
        .sources(upstream?, |e| e == Edge::Targets)
        .into_iter()
        .filter_map(|(_, p)| ir.object(p))
        .find(|p| p.kind == Kind::BackendTLSPolicy)?;
    let Some(Spec::BackendTLSPolicy(spec)) = &policy.spec else {
        return None;
    };
    let validation = &spec.validation;
    Some(t::Tls {
        hostname: validation.hostname.clone(),
        system_cas: validation.well_known_ca_certificates.is_some(),
        ca_certificates: validation
            .ca_certificate_refs
            .iter()
            .map(|c| t::ObjectRef {
                kind: c.kind.clone(),
                namespace: policy.namespace.clone(),
                name: c.name.clone(),
            })
            .collect(),
        subject_alt_names: validation
            .subject_alt_names
            .iter()
            .filter_map(|san| {
                san.get("hostname")
                    .or_else(|| san.get("uri"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .collect(),
    })
}

fn secret(policy: &Object, reference: &SecretObjectReference, key: &str) -> t::SecretRef {
    t::SecretRef {
        namespace: reference
            .namespace
            .clone()
            .unwrap_or_else(|| policy.namespace.clone()),
        name: reference.name.clone(),
        key: key.to_owned(),
    }
}

/// The OIDC client of an exchange; its Secrets' keys are Envoy Gateway's.
fn oidc(policy: &Object, oidc: &aigw_syntax::model::Oidc) -> t::Oidc {
    t::Oidc {
        issuer: oidc.provider.issuer.clone(),
        token_endpoint: oidc.provider.token_endpoint.clone(),
        client_id: oidc.client_id.clone(),
        client_id_secret: oidc
            .client_id_ref
            .as_ref()
            .map(|r| secret(policy, r, "client-id")),
        client_secret: secret(policy, &oidc.client_secret, "client-secret"),
        scopes: oidc.scopes.clone(),
    }
}

fn auth(policy: &Object, spec: &BackendSecurityPolicySpec) -> Option<t::Auth> {
    use aigw_syntax::model::SecurityPolicyType as P;
    let method = match spec.policy_type {
        P::APIKey => t::AuthMethod::APIKey {
            secret: secret(policy, &spec.api_key.as_ref()?.secret_ref, "apiKey"),
        },
        P::AzureAPIKey => t::AuthMethod::AzureAPIKey {
            secret: secret(policy, &spec.azure_api_key.as_ref()?.secret_ref, "apiKey"),
        },
        P::AnthropicAPIKey => t::AuthMethod::AnthropicAPIKey {
            secret: secret(
                policy,
                &spec.anthropic_api_key.as_ref()?.secret_ref,
                "apiKey",
            ),
        },
        P::AWSCredentials => {
            let aws = spec.aws_credentials.as_ref()?;
            t::AuthMethod::AWSCredentials {
                region: aws.region.clone(),
                credentials_file: aws
                    .credentials_file
                    .as_ref()
                    .map(|f| secret(policy, &f.secret_ref, "credentials")),
                profile: aws.credentials_file.as_ref().map(|f| f.profile.clone()),
                web_identity: aws.oidc_exchange_token.as_ref().map(|o| t::AwsWebIdentity {
                    role_arn: o.aws_role_arn.clone(),
                    oidc: oidc(policy, &o.oidc),
                }),
            }
        }
        P::AzureCredentials => {
            let azure = spec.azure_credentials.as_ref()?;
            t::AuthMethod::AzureCredentials {
                client_id: azure.client_id.clone(),
                tenant_id: azure.tenant_id.clone(),
                client_secret: azure
                    .client_secret_ref
                    .as_ref()
                    .map(|s| secret(policy, s, "client-secret")),
                oidc: azure
                    .oidc_exchange_token
                    .as_ref()
                    .map(|o| oidc(policy, &o.oidc)),
            }
        }
        P::GCPCredentials => {
            let gcp = spec.gcp_credentials.as_ref()?;
            t::AuthMethod::GCPCredentials {
                project: gcp.project_name.clone(),
                region: gcp.region.clone(),
                service_account_key: gcp
                    .credentials_file
                    .as_ref()
                    .map(|f| secret(policy, &f.secret_ref, "service_account.json")),
                workload_identity: gcp.workload_identity_federation_config.as_ref().map(|w| {
                    t::GcpWorkloadIdentity {
                        project_id: w.project_id.clone(),
                        pool: w.workload_identity_pool_name.clone(),
                        provider: w.workload_identity_provider_name.clone(),
                        service_account: w
                            .service_account_impersonation
                            .as_ref()
                            .map(|s| s.service_account_name.clone()),
                        oidc: oidc(policy, &w.oidc_exchange_token.oidc),
                    }
                }),
            }
        }
    };
    let credential_override = spec
        .credential_override
        .as_ref()
        .and_then(|o| o.from_request_headers.as_ref())
        .map(|h| t::CredentialOverride {
            header: h.header.clone(),
            fallback_to_configured: h.fallback_to_configured,
        });
    Some(t::Auth {
        policy: name(policy),
        method,
        credential_override,
    })
}

/// Route-level `set` wins over the backend's for the same (case-insensitive) name; removals
/// are united.
fn merge_headers(route: Option<&HeaderMutation>, backend: Option<&HeaderMutation>) -> t::Mutation {
    fn side(m: Option<&HeaderMutation>) -> Side<'_> {
        (
            m.iter()
                .flat_map(|m| &m.set)
                .map(|h| (&h.name, &h.value))
                .collect(),
            m.iter().flat_map(|m| &m.remove).collect(),
        )
    }
    merge(side(route), side(backend), true)
}

/// As for headers, with field names compared exactly.
fn merge_body(route: Option<&BodyMutation>, backend: Option<&BodyMutation>) -> t::Mutation {
    fn side(m: Option<&BodyMutation>) -> Side<'_> {
        (
            m.iter()
                .flat_map(|m| &m.set)
                .map(|f| (&f.path, &f.value))
                .collect(),
            m.iter().flat_map(|m| &m.remove).collect(),
        )
    }
    merge(side(route), side(backend), false)
}

/// One side of a merge: the pairs it sets and the names it removes.
type Side<'a> = (Vec<(&'a String, &'a String)>, Vec<&'a String>);

fn merge(route: Side<'_>, backend: Side<'_>, fold_case: bool) -> t::Mutation {
    let same = |a: &str, b: &str| {
        if fold_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let mut out = t::Mutation::default();
    for (name, value) in route.0.into_iter().chain(backend.0) {
        if !out.set.iter().any(|s| same(&s.name, name)) {
            out.set.push(t::NameValue {
                name: name.clone(),
                value: value.clone(),
            });
        }
    }
    for name in route.1.into_iter().chain(backend.1) {
        if !out.remove.iter().any(|r| same(r, name)) {
            out.remove.push(name.clone());
        }
    }
    out
}

/// A QuotaPolicy's table entry; bucket selectors are carried as written.
pub(crate) fn quota(object: &Object, backends: Vec<usize>, spec: &QuotaPolicySpec) -> t::Quota {
    let limit = |value: &QuotaValue, cost_expression: Option<String>| t::QuotaLimit {
        cost_expression,
        limit: value.limit,
        window_ms: window_ms(value.duration),
    };
    t::Quota {
        name: name(object),
        backends,
        service: spec
            .service_quota
            .as_ref()
            .map(|s| limit(&s.quota, s.cost_expression.clone())),
        per_model: spec
            .per_model_quotas
            .iter()
            .enumerate()
            .map(|(m, q)| t::ModelQuota {
                model: q.model_name.clone(),
                cost_expression: q.quota.cost_expression.clone(),
                default_bucket: q.quota.default_bucket.as_ref().map(|b| limit(b, None)),
                bucket_rules: q
                    .quota
                    .bucket_rules
                    .iter()
                    .enumerate()
                    .map(|(r, rule)| t::BucketRule {
                        client_selectors: object
                            .origin
                            .node_at(&format!(
                                "spec.perModelQuotas[{m}].quota.bucketRules[{r}].clientSelectors"
                            ))
                            .and_then(|n| n.to_json().as_array().cloned())
                            .unwrap_or_default(),
                        limit: rule.quota.limit,
                        window_ms: window_ms(rule.quota.duration),
                        shadow_mode: rule.shadow_mode.unwrap_or(false),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn window_ms(duration: QuotaDuration) -> u64 {
    match duration {
        QuotaDuration::OneSecond => 1_000,
        QuotaDuration::OneMinute => 60_000,
        QuotaDuration::OneHour => 3_600_000,
        QuotaDuration::OneDay => 86_400_000,
    }
}
