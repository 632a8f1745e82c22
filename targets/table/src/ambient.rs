//! Backends that no BackendSecurityPolicy targets, on a cloud schema: their credential is the
//! cloud's ambient chain where the data plane runs, and the region is read off the Backend's
//! hostname where the cloud writes it there. The data plane reads what the hostname does not
//! give from its environment (see `runtime/proxy/src/ambient.rs`).

use aigw_syntax::model::ApiSchemaName;
use aigw_table as t;

/// The ambient credential of a backend of `schema` with no policy, or `None` for the schemas
/// that are no cloud's.
pub(crate) fn auth(schema: ApiSchemaName, endpoints: &[t::Endpoint]) -> Option<t::Auth> {
    let cloud = match schema {
        ApiSchemaName::AWSBedrock | ApiSchemaName::AWSAnthropic => t::Cloud::AWS,
        ApiSchemaName::GCPVertexAI | ApiSchemaName::GCPAnthropic => t::Cloud::GCP,
        ApiSchemaName::AzureOpenAI => t::Cloud::Azure,
        _ => return None,
    };
    let region = endpoints.iter().find_map(|e| match e {
        t::Endpoint::Fqdn { hostname, .. } => region(cloud, hostname),
        _ => None,
    });
    Some(t::Auth {
        policy: String::new(),
        method: t::AuthMethod::AmbientCredentials { cloud, region },
        credential_override: None,
    })
}

/// The region a cloud's hostname names: Bedrock's `bedrock-runtime.{region}.amazonaws.com`
/// (also `bedrock-runtime-fips.` and VPC endpoints `vpce-….bedrock-runtime.{region}.vpce.…`),
/// Vertex AI's `{region}-aiplatform.googleapis.com` (and `global` for the bare name).
fn region(cloud: t::Cloud, hostname: &str) -> Option<String> {
    let labels: Vec<&str> = hostname.split('.').collect();
    match cloud {
        t::Cloud::AWS => {
            let at = labels
                .iter()
                .position(|l| l.starts_with("bedrock-runtime"))?;
            labels.get(at + 1).map(|r| (*r).to_owned())
        }
        t::Cloud::GCP if hostname == "aiplatform.googleapis.com" => Some("global".to_owned()),
        t::Cloud::GCP => labels
            .first()?
            .strip_suffix("-aiplatform")
            .filter(|_| hostname.ends_with(".googleapis.com"))
            .map(str::to_owned),
        t::Cloud::Azure => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_come_from_the_hostnames_the_clouds_write() {
        let aws = |h| region(t::Cloud::AWS, h);
        let gcp = |h| region(t::Cloud::GCP, h);
        assert_eq!(
            aws("bedrock-runtime.us-east-1.amazonaws.com").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            aws("bedrock-runtime-fips.us-gov-west-1.amazonaws.com").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(
            aws("vpce-0a1b.bedrock-runtime.eu-west-3.vpce.amazonaws.com").as_deref(),
            Some("eu-west-3")
        );
        assert_eq!(aws("llm-proxy.internal"), None);
        assert_eq!(
            gcp("us-central1-aiplatform.googleapis.com").as_deref(),
            Some("us-central1")
        );
        assert_eq!(gcp("aiplatform.googleapis.com").as_deref(), Some("global"));
        assert_eq!(gcp("us-central1-aiplatform.example.com"), None);
    }
}
