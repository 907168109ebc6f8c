//! Seeding a fresh API server with what most end-to-end suites need before their first object.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use crate::Error;

/// Install the NetworkAttachmentDefinition CRD (as `multusctl crds` generates it) and create the
/// given namespaces.
pub async fn nad_crd_and_namespaces(
    client: &kube::Client,
    namespaces: &[&str],
) -> Result<(), Error> {
    let seed = |what: String| {
        move |source| Error::SeedObject {
            what,
            source: Box::new(source),
        }
    };
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &multus_crds::crdgen::nad_crd())
        .await
        .map_err(seed("the NetworkAttachmentDefinition CRD".to_owned()))?;
    let api: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces {
        let obj = Namespace {
            metadata: ObjectMeta {
                name: Some((*ns).to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        api.create(&PostParams::default(), &obj)
            .await
            .map_err(seed(format!("namespace {ns}")))?;
    }
    Ok(())
}
