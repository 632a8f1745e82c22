//! Ambient cloud credentials: what a backend that no BackendSecurityPolicy targets signs with,
//! taken from where the data plane runs, in each cloud SDK's documented order (issue #22). The
//! compiler warns that such a backend uses them (AIGW0044); here the environment is read when a
//! generation is built, and the credentials themselves are got, cached and refreshed like the
//! policies' ([`crate::token`]):
//! - **AWS**: the AWS SDK's default chain (`aws-config`), which reads its own variables and
//!   files: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, `AWS_PROFILE` with
//!   `~/.aws/config` and `~/.aws/credentials`, `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`
//!   (IRSA; STS at `AWS_ENDPOINT_URL_STS`), `AWS_CONTAINER_CREDENTIALS_FULL_URI` +
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (EKS Pod Identity, ECS), then IMDSv2
//!   (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, `AWS_EC2_METADATA_DISABLED`). The region is the
//!   Backend hostname's (`bedrock-runtime.{region}.amazonaws.com`), else `AWS_REGION`, else
//!   `AWS_DEFAULT_REGION`. An AWSCredentials policy with neither a credentials file nor an OIDC
//!   exchange uses the same chain, as the reference documents.
//! - **GCP**, Application Default Credentials: the file at `GOOGLE_APPLICATION_CREDENTIALS`
//!   (a `service_account` key or an `external_account` with a file credential source), else
//!   gcloud's well-known file (`$CLOUDSDK_CONFIG` or `~/.config/gcloud`,
//!   `application_default_credentials.json`, the same two types), else the metadata server
//!   (`GCE_METADATA_HOST`, default `169.254.169.254`). The project is `GOOGLE_CLOUD_PROJECT`
//!   (or `GCLOUD_PROJECT`, `CLOUDSDK_CORE_PROJECT`), else the key file's `project_id` or
//!   `quota_project_id`, else the metadata server's; the region is the hostname's
//!   (`{region}-aiplatform.googleapis.com`), else `GOOGLE_CLOUD_LOCATION`.
//! - **Azure**: `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` with `AZURE_CLIENT_SECRET` (client
//!   credentials), else with `AZURE_FEDERATED_TOKEN_FILE` (workload identity: the file's token
//!   as the client assertion, read again for every exchange), at `AZURE_AUTHORITY_HOST`.
//!
//! Decisions: gcloud user credentials (`authorized_user`) and Azure managed identity (IMDS) are
//! not read; such a backend is answered 503 naming what was looked for, as is one with no
//! region. A request is never sent without a credential.
//!
//! *Invariant*: secrets read here (a client secret, a key file) go into their token source and
//! nowhere else; errors name variables and paths, never values.

use crate::auth::AwsSigner;
use crate::credentials::Resolved;
use crate::generation::{GcpPlace, Unsupported};
use crate::token::{Endpoints, Subject, TokenSource};
use crate::upstream::Clients;
use aigw_table::Cloud;
use std::path::PathBuf;
use std::sync::Arc;

/// The environment variable `name`, trimmed, when set and not empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn first_var(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| var(n))
}

/// The ambient credential of a backend of `cloud`; `region` is the table's (the hostname's).
pub(crate) fn resolve(
    name: &Arc<str>,
    cloud: Cloud,
    region: Option<&str>,
    clients: &Clients,
    endpoints: &Endpoints,
) -> Resolved {
    let mut out = Resolved::default();
    let outcome = match cloud {
        Cloud::AWS => aws_region(region).map(|region| out.aws = Some(aws(name, &region, clients))),
        Cloud::GCP => gcp(name, region, clients).map(|(place, token)| {
            out.gcp = Some(place);
            out.token = Some(Arc::new(token));
        }),
        Cloud::Azure => {
            azure(name, clients, endpoints).map(|token| out.token = Some(Arc::new(token)))
        }
    };
    if let Err(why) = outcome {
        tracing::warn!(backend = %name, reason = why, "no ambient credential; requests to the backend will be refused");
        out.unsupported = Some(Unsupported::NoAmbient(why));
    }
    out
}

/// SigV4 with the AWS SDK's default chain in `region`.
pub(crate) fn aws(name: &Arc<str>, region: &str, clients: &Clients) -> AwsSigner {
    let source = TokenSource::aws_chain(name.clone(), region, clients.plain());
    AwsSigner::exchanged(region, Arc::new(source))
}

fn aws_region(region: Option<&str>) -> Result<String, &'static str> {
    region
        .map(str::to_owned)
        .or_else(|| first_var(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
        .ok_or(
            "no AWS region: the Backend's hostname names none and neither AWS_REGION nor AWS_DEFAULT_REGION is set",
        )
}

/// What a credentials file is, by its `type`.
#[derive(serde::Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    quota_project_id: Option<String>,
}

fn gcp(
    name: &Arc<str>,
    region: Option<&str>,
    clients: &Clients,
) -> Result<(GcpPlace, TokenSource), &'static str> {
    let region = region
        .map(str::to_owned)
        .or_else(|| var("GOOGLE_CLOUD_LOCATION"))
        .ok_or(
            "no GCP region: the Backend's hostname names none and GOOGLE_CLOUD_LOCATION is not set",
        )?;
    let mut project = first_var(&[
        "GOOGLE_CLOUD_PROJECT",
        "GCLOUD_PROJECT",
        "CLOUDSDK_CORE_PROJECT",
    ]);
    let token = match adc_file()? {
        Some(bytes) => {
            let file: CredentialsFile = serde_json::from_slice(&bytes)
                .map_err(|_| "the Application Default Credentials file is not a JSON credentials file with a `type`")?;
            project = project.or(file.project_id).or(file.quota_project_id);
            let client = clients.plain();
            match file.kind.as_str() {
                "service_account" => TokenSource::gcp(name.clone(), &bytes, client)
                    .map_err(|_| "the Application Default Credentials file is not a valid service-account key")?,
                "external_account" => TokenSource::gcp_external_account(name.clone(), &bytes, client)
                    .map_err(|_| "the Application Default Credentials file is an external account without a file credential source")?,
                _ => return Err("the Application Default Credentials file is of a type this build does not read (service_account and external_account are)"),
            }
        }
        None => {
            let host = var("GCE_METADATA_HOST").unwrap_or_else(|| "169.254.169.254".to_owned());
            TokenSource::gcp_metadata(name.clone(), &host, clients.plain())
        }
    };
    Ok((GcpPlace { project, region }, token))
}

/// The bytes of the ADC file: `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's well-known file
/// when it exists; `None` for neither (the metadata server is next).
fn adc_file() -> Result<Option<Vec<u8>>, &'static str> {
    if let Some(path) = var("GOOGLE_APPLICATION_CREDENTIALS") {
        return std::fs::read(&path)
            .map(Some)
            .map_err(|_| "GOOGLE_APPLICATION_CREDENTIALS names a file that cannot be read");
    }
    let dir = var("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".config/gcloud")));
    let well_known = dir.map(|d| d.join("application_default_credentials.json"));
    Ok(well_known.and_then(|path| std::fs::read(path).ok()))
}

fn azure(
    name: &Arc<str>,
    clients: &Clients,
    endpoints: &Endpoints,
) -> Result<TokenSource, &'static str> {
    let (Some(client_id), Some(tenant)) = (var("AZURE_CLIENT_ID"), var("AZURE_TENANT_ID")) else {
        return Err(
            "Azure: AZURE_CLIENT_ID and AZURE_TENANT_ID are not both set (with AZURE_CLIENT_SECRET, or AZURE_FEDERATED_TOKEN_FILE for workload identity)",
        );
    };
    let bad_tenant = "Azure: AZURE_TENANT_ID is not a tenant id or domain name";
    if let Some(secret) = var("AZURE_CLIENT_SECRET") {
        return TokenSource::azure(
            name.clone(),
            &tenant,
            &client_id,
            secret.as_bytes(),
            endpoints,
            clients.plain(),
        )
        .map_err(|_| bad_tenant);
    }
    let Some(file) = var("AZURE_FEDERATED_TOKEN_FILE") else {
        return Err("Azure: neither AZURE_CLIENT_SECRET nor AZURE_FEDERATED_TOKEN_FILE is set");
    };
    TokenSource::azure_assertion(
        name.clone(),
        &tenant,
        &client_id,
        Subject::File(PathBuf::from(file)),
        endpoints,
        clients.plain(),
    )
    .map_err(|_| bad_tenant)
}
