//! The server calls admission webhooks over TLS like the real one: denials reach the client in
//! the real server's words, and mutating patches land before validation.
// Test code: helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{convert::Infallible, sync::Arc};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::PostParams,
    core::{ApiResource, DynamicObject, GroupVersionKind},
};
use multus_tests::apiserver::{FakeApiServer, tls::CertBundle};
use serde_json::{Value, json};

/// A webhook over TLS: `/validate` denies objects labelled `deny`, `/mutate` adds a label.
async fn webhook_server(bundle: &CertBundle) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(bundle.server_config().unwrap()));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let review: Value = serde_json::from_slice(&body).unwrap();
                        let request = &review["request"];
                        let uid = request["uid"].clone();
                        let response = if path == "/validate" {
                            if request["object"]["metadata"]["labels"]
                                .get("deny")
                                .is_some()
                            {
                                json!({"uid": uid, "allowed": false, "status": {"message": "objects labelled deny are refused"}})
                            } else {
                                json!({"uid": uid, "allowed": true})
                            }
                        } else {
                            let patch = json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "true"}}]);
                            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
                            "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string())})
                        };
                        let out = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(
                            out.to_string(),
                        ))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

fn config(
    kind: &str,
    name: &str,
    url: &str,
    ca_bundle: &str,
    failure_policy: &str,
    object_selector: Value,
) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
        "metadata": {"name": name},
        "webhooks": [{
            "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": failure_policy, "timeoutSeconds": 5, "objectSelector": object_selector,
            "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"], "scope": "*"}]
        }]
    }))
    .unwrap()
}

fn api_for(client: kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::all_with(
        client,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
            plural,
        ),
    )
}

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

#[tokio::test]
async fn a_validating_webhook_over_tls_denies_and_a_mutating_patch_is_applied() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().await.unwrap();
    let bundle = CertBundle::generate(&["127.0.0.1", "localhost"]).unwrap();
    let url = webhook_server(&bundle).await;
    let ca = bundle.ca_bundle();

    let validating = api_for(
        client.clone(),
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
    );
    validating
        .create(
            &PostParams::default(),
            &config(
                "ValidatingWebhookConfiguration",
                "deny.multus.test",
                &format!("{url}/validate"),
                &ca,
                "Fail",
                json!({}),
            ),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let err = cms
        .create(
            &PostParams::default(),
            &cm("refused", json!({"deny": "yes"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}")
    };
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        "admission webhook \"deny.multus.test\" denied the request: objects labelled deny are refused"
    );
    assert!(
        cms.create(&PostParams::default(), &cm("allowed", json!({})))
            .await
            .is_ok()
    );

    // Mutating webhooks run first; the label they add is what the validating webhook sees.
    let mutating = api_for(
        client.clone(),
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
    );
    mutating
        .create(
            &PostParams::default(),
            &config(
                "MutatingWebhookConfiguration",
                "mutate.multus.test",
                &format!("{url}/mutate"),
                &ca,
                "Fail",
                json!({}),
            ),
        )
        .await
        .unwrap();
    let created = cms
        .create(
            &PostParams::default(),
            &cm("mutated", json!({"deny": "yes"})),
        )
        .await
        .unwrap();
    assert_eq!(
        created
            .metadata
            .labels
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [("mutated".to_owned(), "true".to_owned())]
    );
}

#[tokio::test]
async fn unreachable_webhooks_follow_failure_policy_and_selectors() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().await.unwrap();
    let bundle = CertBundle::generate(&["127.0.0.1"]).unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{closed}/validate");
    let validating = api_for(
        client.clone(),
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
    );
    let selector = json!({"matchLabels": {"checked": "yes"}});
    validating
        .create(
            &PostParams::default(),
            &config(
                "ValidatingWebhookConfiguration",
                "fail.multus.test",
                &url,
                &bundle.ca_bundle(),
                "Fail",
                selector,
            ),
        )
        .await
        .unwrap();
    validating
        .create(
            &PostParams::default(),
            &config(
                "ValidatingWebhookConfiguration",
                "ignore.multus.test",
                &url,
                &bundle.ca_bundle(),
                "Ignore",
                json!({}),
            ),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    // Not selected by the failing webhook; the ignored one's failure is ignored.
    cms.create(&PostParams::default(), &cm("unchecked", json!({})))
        .await
        .unwrap();
    let err = cms
        .create(
            &PostParams::default(),
            &cm("checked", json!({"checked": "yes"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}")
    };
    assert_eq!(status.code, 500);
    assert!(
        status
            .message
            .starts_with("Internal error occurred: failed calling webhook \"fail.multus.test\""),
        "{}",
        status.message
    );
}
