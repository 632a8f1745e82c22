//! The BackendSecurityPolicy kind (aigateway.envoyproxy.io): how aigw authenticates to an
//! upstream provider. All six types, the OIDC exchange variants and credentialOverride.
//!
//! The embedded Envoy Gateway OIDC type is modelled to the fields the CRD rules read; its
//! `provider.backendSettings` sub-tree is carried opaque and left to Envoy Gateway to check.

use super::common::*;
use schemars::JsonSchema;
use serde::Deserialize;

/// The `spec` of a BackendSecurityPolicy.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendSecurityPolicySpec {
    // The credential blocks are boxed: inline they made every policy some 4 KiB, most of the
    // checked graph's memory on large inputs.
    #[serde(rename = "type")]
    pub policy_type: SecurityPolicyType,
    #[serde(default)]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    #[serde(rename = "apiKey")]
    pub api_key: Option<SecretKeySource>,
    #[serde(rename = "azureAPIKey")]
    pub azure_api_key: Option<SecretKeySource>,
    #[serde(rename = "anthropicAPIKey")]
    pub anthropic_api_key: Option<SecretKeySource>,
    pub aws_credentials: Option<Box<AwsCredentials>>,
    pub azure_credentials: Option<Box<AzureCredentials>>,
    pub gcp_credentials: Option<Box<GcpCredentials>>,
    pub credential_override: Option<Box<CredentialOverride>>,
}

/// The six policy types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, JsonSchema)]
pub enum SecurityPolicyType {
    APIKey,
    AWSCredentials,
    AzureAPIKey,
    AzureCredentials,
    GCPCredentials,
    AnthropicAPIKey,
}

impl SecurityPolicyType {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::APIKey => "APIKey",
            Self::AWSCredentials => "AWSCredentials",
            Self::AzureAPIKey => "AzureAPIKey",
            Self::AzureCredentials => "AzureCredentials",
            Self::GCPCredentials => "GCPCredentials",
            Self::AnthropicAPIKey => "AnthropicAPIKey",
        }
    }
}

/// A key held in a Secret (`apiKey`, `azureAPIKey`, `anthropicAPIKey`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeySource {
    pub secret_ref: SecretObjectReference,
}

/// AWS SigV4 credentials: a credentials file or an OIDC exchange (or the default chain).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsCredentials {
    #[schemars(length(min = 1))]
    pub region: String,
    pub credentials_file: Option<AwsCredentialsFile>,
    pub oidc_exchange_token: Option<AwsOidcExchangeToken>,
}

/// An AWS shared credentials file held in a Secret under the `credentials` key.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsCredentialsFile {
    pub secret_ref: SecretObjectReference,
    #[serde(default = "default_profile")]
    pub profile: String,
}

fn default_profile() -> String {
    "default".to_owned()
}

/// AWS web identity exchange of an OIDC token.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsOidcExchangeToken {
    pub oidc: Oidc,
    pub grant_type: Option<String>,
    pub aud: Option<String>,
    #[schemars(length(min = 1))]
    pub aws_role_arn: String,
}

/// Azure Entra ID client credentials: a client secret or an OIDC exchange.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureCredentials {
    #[serde(rename = "clientID")]
    #[schemars(length(min = 1))]
    pub client_id: String,
    #[serde(rename = "tenantID")]
    #[schemars(length(min = 1))]
    pub tenant_id: String,
    pub client_secret_ref: Option<SecretObjectReference>,
    pub oidc_exchange_token: Option<OidcExchangeToken>,
}

/// A plain OIDC exchange (Azure, GCP).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcExchangeToken {
    pub oidc: Oidc,
    pub grant_type: Option<String>,
    pub aud: Option<String>,
}

/// GCP credentials: a service-account key file or workload identity federation.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcpCredentials {
    #[schemars(length(min = 1))]
    pub project_name: String,
    #[schemars(length(min = 1))]
    pub region: String,
    pub credentials_file: Option<GcpCredentialsFile>,
    pub workload_identity_federation_config: Option<GcpWorkloadIdentityFederation>,
}

/// A service-account key held in a Secret under `service_account.json`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcpCredentialsFile {
    pub secret_ref: SecretObjectReference,
}

/// GCP workload identity federation.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcpWorkloadIdentityFederation {
    #[serde(rename = "projectID")]
    #[schemars(length(min = 1))]
    pub project_id: String,
    #[schemars(length(min = 1))]
    pub workload_identity_pool_name: String,
    #[schemars(length(min = 1))]
    pub workload_identity_provider_name: String,
    pub oidc_exchange_token: OidcExchangeToken,
    pub service_account_impersonation: Option<GcpServiceAccountImpersonation>,
}

/// The service account to impersonate after federation.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcpServiceAccountImpersonation {
    #[schemars(length(min = 1))]
    pub service_account_name: String,
}

/// Envoy Gateway's OIDC configuration, as the CRD embeds it.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Oidc {
    pub provider: OidcProvider,
    #[serde(rename = "clientID")]
    #[schemars(length(min = 1))]
    pub client_id: Option<String>,
    #[serde(rename = "clientIDRef")]
    pub client_id_ref: Option<SecretObjectReference>,
    pub client_secret: SecretObjectReference,
    pub cookie_names: Option<serde_json::Value>,
    pub cookie_config: Option<serde_json::Value>,
    pub cookie_domain: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(rename = "redirectURL")]
    pub redirect_url: Option<String>,
    pub deny_redirect: Option<serde_json::Value>,
    pub logout_path: Option<String>,
    pub forward_access_token: Option<bool>,
    #[serde(rename = "forwardIDToken")]
    pub forward_id_token: Option<OidcForwardIdToken>,
    pub default_token_ttl: Option<String>,
    pub refresh_token: Option<bool>,
    pub default_refresh_token_ttl: Option<String>,
    #[serde(rename = "csrfTokenTTL")]
    pub csrf_token_ttl: Option<String>,
    pub disable_token_encryption: Option<bool>,
    pub pass_through_auth_header: Option<bool>,
}

/// Where the ID token is forwarded.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcForwardIdToken {
    #[schemars(length(min = 1))]
    pub header: String,
}

/// The OIDC provider endpoints.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcProvider {
    #[schemars(length(min = 1))]
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub backend_ref: Option<BackendObjectReference>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub backend_refs: Vec<WeightedBackendRef>,
    /// Envoy Gateway's ClusterSettings, carried opaque.
    pub backend_settings: Option<serde_json::Value>,
}

/// Lets a request carry its own credential instead of the configured one.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialOverride {
    pub from_request_headers: Option<CredentialFromHeaders>,
    pub from_dynamic_metadata: Option<CredentialFromMetadata>,
}

/// Take the credential from a request header.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialFromHeaders {
    pub header: Option<String>,
    #[serde(default = "default_true")]
    pub fallback_to_configured: bool,
}

/// Take the credential from Envoy dynamic metadata.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialFromMetadata {
    #[schemars(length(min = 1))]
    pub namespace: String,
    pub key: Option<String>,
    #[serde(default = "default_true")]
    pub fallback_to_configured: bool,
}
