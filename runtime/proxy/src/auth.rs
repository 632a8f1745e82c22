//! Upstream credentials that are more than a fixed header: AWS SigV4 signing (by the
//! `aws-sigv4` crate), with credentials from the policy's Secret (an AWS credentials file),
//! from STS for an OIDC token, or from the AWS SDK's default chain (both refreshed by
//! [`crate::token`]).
//!
//! *Invariant*: a request that needs a signature and cannot get one fails with a 5xx error;
//! it is never sent unsigned. Secret values never reach a log line or an error message.

use crate::error::ProxyError;
use crate::secrets::{Missing, Secrets};
use aigw_table::SecretRef;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::sync::Arc;
use std::time::SystemTime;

/// The service name Bedrock Runtime signs with.
const BEDROCK: &str = "bedrock";

/// Signs requests to one AWS backend.
pub struct AwsSigner {
    identity: Source,
    region: String,
}

enum Source {
    Fixed(Identity),
    /// Temporary keys from STS, refreshed ahead of expiry.
    Exchanged(Arc<crate::token::TokenSource>),
}

impl std::fmt::Debug for AwsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSigner")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Why AWS credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(transparent)]
    Secret(#[from] Missing),
    #[error(
        "the credentials file in secret `{secret}` has no profile `{profile}` with `aws_access_key_id` and `aws_secret_access_key`"
    )]
    NoProfile { secret: String, profile: String },
}

impl AwsSigner {
    /// Credentials from `file` (a Secret holding an AWS credentials file) under `profile`.
    pub fn load(
        region: &str,
        file: &SecretRef,
        profile: Option<&str>,
        secrets: &Secrets,
    ) -> Result<Self, AwsError> {
        let raw = secrets.get(file)?;
        let profile = profile.unwrap_or("default");
        let credentials = from_file(&String::from_utf8_lossy(&raw), profile).ok_or_else(|| {
            AwsError::NoProfile {
                secret: format!("{}/{}", file.namespace, file.name),
                profile: profile.to_owned(),
            }
        })?;
        Ok(AwsSigner {
            identity: Source::Fixed(credentials.into()),
            region: region.to_owned(),
        })
    }

    /// Signs with the keys `source` gets (from STS, or from the AWS default chain).
    pub fn exchanged(region: &str, source: Arc<crate::token::TokenSource>) -> Self {
        AwsSigner {
            identity: Source::Exchanged(source),
            region: region.to_owned(),
        }
    }

    /// Adds the SigV4 headers (`authorization`, `x-amz-date`, and `x-amz-security-token`
    /// with session credentials) to `request`, whose URI is the absolute upstream URL. The
    /// signature covers the host actually contacted, the content type and the body.
    /// Fails (503) when exchanged keys cannot be had.
    pub async fn sign<B>(
        &self,
        request: &mut http::Request<B>,
        body: &[u8],
    ) -> Result<(), ProxyError> {
        let identity = match &self.identity {
            Source::Fixed(identity) => identity.clone(),
            Source::Exchanged(source) => source.aws().await?,
        };
        let failed = || ProxyError::internal("the request could not be signed for AWS");
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(BEDROCK)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| failed())?
            .into();
        let uri = request.uri().to_string();
        // Only headers no hop will touch are signed; the host comes from the URI.
        let signed = request.headers().iter().filter_map(|(name, value)| {
            let name = name.as_str();
            (name == "content-type" || name.starts_with("x-amz-"))
                .then(|| Some((name, value.to_str().ok()?)))
                .flatten()
        });
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            signed,
            SignableBody::Bytes(body),
        )
        .map_err(|_| failed())?;
        let (instructions, _signature) =
            sign(signable, &params).map_err(|_| failed())?.into_parts();
        instructions.apply_to_request_http1x(request);
        // The signature and the session token are secrets: never logged.
        for name in ["authorization", "x-amz-security-token"] {
            if let Some(value) = request.headers_mut().get_mut(name) {
                value.set_sensitive(true);
            }
        }
        Ok(())
    }
}

/// The profile's keys from an AWS credentials file (INI: `[profile]` sections of
/// `key = value` lines, `#` and `;` comments). Written here because only these three keys
/// of one section are needed; the config file's `[profile name]` spelling is accepted too.
fn from_file(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut key, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            let name = section.strip_prefix("profile ").unwrap_or(section).trim();
            in_profile = name == profile;
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if !in_profile {
            continue;
        }
        let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        match name.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => key = value,
            "aws_secret_access_key" => secret = value,
            "aws_session_token" => token = value,
            _ => {}
        }
    }
    Some(Credentials::new(
        key?,
        secret?,
        token,
        None,
        "credentials-file",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_from_a_credentials_file() {
        let file = "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n[profile ci]\naws_access_key_id=AKIDCI\naws_secret_access_key=s2\naws_session_token = tok\n";
        let default = from_file(file, "default").map(|c| c.access_key_id().to_owned());
        assert_eq!(default.as_deref(), Some("AKIDDEFAULT"));
        let ci = from_file(file, "ci");
        assert_eq!(ci.as_ref().map(|c| c.access_key_id()), Some("AKIDCI"));
        assert_eq!(ci.as_ref().and_then(|c| c.session_token()), Some("tok"));
        assert!(from_file(file, "missing").is_none());
        // Keys without a secret are no credentials.
        assert!(from_file("[default]\naws_access_key_id = A\n", "default").is_none());
    }

    #[tokio::test]
    async fn a_signed_request_carries_the_signature_and_no_secret_in_debug() {
        let signer = AwsSigner {
            identity: Source::Fixed(
                Credentials::new(
                    "AKIDEXAMPLE",
                    "wJalrXUtnFEMI",
                    Some("session".into()),
                    None,
                    "t",
                )
                .into(),
            ),
            region: "us-east-1".into(),
        };
        let mut request = http::Request::post("http://127.0.0.1:9/model/m/converse")
            .header("content-type", "application/json")
            .header("user-agent", "x")
            .body(())
            .unwrap_or_default();
        assert_eq!(
            request.uri().host(),
            Some("127.0.0.1"),
            "the request was built"
        );
        assert!(signer.sign(&mut request, b"{}").await.is_ok());
        let auth = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or(""));
        let auth = auth.unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
        assert!(request.headers().contains_key("x-amz-date"));
        assert_eq!(
            request
                .headers()
                .get("x-amz-security-token")
                .map(|v| v.as_bytes()),
            Some(&b"session"[..])
        );
        let debug = format!("{signer:?} {:?}", request.headers());
        assert!(
            !debug.contains("wJalrXUtnFEMI") && !debug.contains("session\""),
            "{debug}"
        );
    }
}
