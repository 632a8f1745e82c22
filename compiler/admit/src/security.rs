//! Admission rules of BackendSecurityPolicy: one credential block matching the type, the Azure,
//! GCP and OIDC exclusivity rules, target kinds, and the property-count bounds of the CRD.

use crate::Cx;
use aigw_syntax::model::*;

pub(crate) fn admit(cx: &mut Cx<'_>, spec: &BackendSecurityPolicySpec) {
    admit_type(cx, spec);
    let max_properties = if cx.is_version("v1alpha1") { 3 } else { 4 };
    if count_properties(spec) > max_properties {
        cx.rule(
            "spec",
            &format!("must have at most {max_properties} properties"),
        );
    }
    if let Some(azure) = &spec.azure_credentials {
        if azure.client_secret_ref.is_some() == azure.oidc_exchange_token.is_some() {
            cx.rule(
                "spec.azureCredentials",
                "Exactly one of clientSecretRef or oidcExchangeToken must be specified",
            );
        }
        if let Some(exchange) = &azure.oidc_exchange_token {
            admit_oidc(
                cx,
                "spec.azureCredentials.oidcExchangeToken.oidc",
                &exchange.oidc,
            );
        }
    }
    if let Some(aws) = &spec.aws_credentials
        && let Some(exchange) = &aws.oidc_exchange_token
    {
        admit_oidc(
            cx,
            "spec.awsCredentials.oidcExchangeToken.oidc",
            &exchange.oidc,
        );
    }
    if let Some(gcp) = &spec.gcp_credentials {
        let file = gcp.credentials_file.is_some();
        let federation = gcp.workload_identity_federation_config.is_some();
        if cx.is_version("v1alpha1") && file == federation {
            cx.rule(
                "spec.gcpCredentials",
                "Exactly one of GCPWorkloadIdentityFederationConfig or GCPCredentialsFile must be specified",
            );
        } else if file && federation {
            cx.rule(
                "spec.gcpCredentials",
                "At most one of credentialsFile or workloadIdentityFederationConfig may be specified",
            );
        }
        if let Some(wif) = &gcp.workload_identity_federation_config {
            let at = "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc";
            admit_oidc(cx, at, &wif.oidc_exchange_token.oidc);
        }
    }
    let valid_target = |r: &LocalPolicyTargetReference| {
        (r.group == AIGW_GROUP && r.kind == "AIServiceBackend")
            || (r.group == INFERENCE_GROUP && r.kind == "InferencePool")
    };
    if !spec.target_refs.iter().all(valid_target) {
        cx.rule(
            "spec.targetRefs",
            "targetRefs must reference AIServiceBackend or InferencePool resources",
        );
    }
    if let Some(over) = &spec.credential_override {
        let set = usize::from(over.from_request_headers.is_some())
            + usize::from(over.from_dynamic_metadata.is_some());
        if set != 1 {
            cx.rule(
                "spec.credentialOverride",
                "exactly one of fromRequestHeaders or fromDynamicMetadata must be set",
            );
        }
    }
}

/// "When type is X, only x field should be set": the block named by the type must be present
/// and no other credential block may be.
fn admit_type(cx: &mut Cx<'_>, spec: &BackendSecurityPolicySpec) {
    let blocks = [
        (SecurityPolicyType::APIKey, "apiKey", spec.api_key.is_some()),
        (
            SecurityPolicyType::AWSCredentials,
            "awsCredentials",
            spec.aws_credentials.is_some(),
        ),
        (
            SecurityPolicyType::AzureAPIKey,
            "azureAPIKey",
            spec.azure_api_key.is_some(),
        ),
        (
            SecurityPolicyType::AzureCredentials,
            "azureCredentials",
            spec.azure_credentials.is_some(),
        ),
        (
            SecurityPolicyType::GCPCredentials,
            "gcpCredentials",
            spec.gcp_credentials.is_some(),
        ),
        (
            SecurityPolicyType::AnthropicAPIKey,
            "anthropicAPIKey",
            spec.anthropic_api_key.is_some(),
        ),
    ];
    let Some((_, field, _)) = blocks.iter().find(|(t, _, _)| *t == spec.policy_type) else {
        return;
    };
    let ok = blocks
        .iter()
        .all(|(t, _, present)| *present == (*t == spec.policy_type));
    if !ok {
        let message = format!(
            "When type is {}, only {field} field should be set",
            spec.policy_type.as_str()
        );
        cx.rule("spec", &message);
    }
}

fn count_properties(spec: &BackendSecurityPolicySpec) -> usize {
    1 + usize::from(!spec.target_refs.is_empty())
        + usize::from(spec.api_key.is_some())
        + usize::from(spec.azure_api_key.is_some())
        + usize::from(spec.anthropic_api_key.is_some())
        + usize::from(spec.aws_credentials.is_some())
        + usize::from(spec.azure_credentials.is_some())
        + usize::from(spec.gcp_credentials.is_some())
        + usize::from(spec.credential_override.is_some())
}

fn admit_oidc(cx: &mut Cx<'_>, at: &str, oidc: &Oidc) {
    if oidc.client_id.is_some() == oidc.client_id_ref.is_some() {
        cx.rule(at, "only one of clientID or clientIDRef must be set");
    }
    let forwards_to_authorization = oidc
        .forward_id_token
        .as_ref()
        .is_some_and(|f| f.header.eq_ignore_ascii_case("authorization"));
    if oidc.forward_access_token == Some(true) && forwards_to_authorization {
        cx.rule(
            at,
            "forwardAccessToken cannot be true when forwardIDToken.header is Authorization",
        );
    }
    let provider = &oidc.provider;
    if let Some(backend) = &provider.backend_ref {
        cx.rule(
            &format!("{at}.provider"),
            "BackendRefs must be used, backendRef is not supported.",
        );
        if backend.group.is_empty() && backend.kind == "Service" && backend.port.is_none() {
            cx.rule(
                &format!("{at}.provider.backendRef"),
                "Must have port for Service reference",
            );
        }
    }
    for (i, backend) in provider.backend_refs.iter().enumerate() {
        if backend.group.is_empty() && backend.kind == "Service" && backend.port.is_none() {
            cx.rule(
                &format!("{at}.provider.backendRefs[{i}]"),
                "Must have port for Service reference",
            );
        }
    }
}
