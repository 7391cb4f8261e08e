//! The OpenAPI document's frame: title, bearer security scheme, tags.
//! Paths and schemas come from the handlers' `#[utoipa::path]`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "subcast-controller", description = "Rendezvous groups for transactional subset multicast. Tokens: `Authorization: Bearer TOKEN`; role admin may do everything, role storage-node only POST/DELETE /v1/rendezvous."),
    modifiers(&BearerAuth),
    tags((name = "rendezvous", description = "Lease and release rendezvous groups"), (name = "status", description = "What the controller knows"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
