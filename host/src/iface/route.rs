use wasmtime::component::Resource;

use crate::bindings::route::{Host, RouteInfo};
use crate::error::LabError;
use crate::lab::{NsId, Route};
use crate::policy::Op;

use super::LabView;

impl LabView<'_> {
    async fn route(
        &mut self,
        ns: &Resource<NsId>,
        r: &RouteInfo,
    ) -> Result<(NsId, Route), LabError> {
        let id = *self.table.get(ns)?;
        let parsed = self
            .lab
            .parse_route(
                id,
                &r.destination,
                r.gateway.as_deref(),
                r.device.as_deref(),
            )
            .await?;
        Ok((id, parsed))
    }
}

impl Host for LabView<'_> {
    async fn add(&mut self, ns: Resource<NsId>, r: RouteInfo) -> Result<(), LabError> {
        self.ask(Op::Owned)?;
        let (id, route) = self.route(&ns, &r).await?;
        self.lab.add_route(id, &route).await
    }

    async fn remove(&mut self, ns: Resource<NsId>, r: RouteInfo) -> Result<(), LabError> {
        self.ask(Op::Owned)?;
        let (id, route) = self.route(&ns, &r).await?;
        self.lab.remove_route(id, &route).await
    }

    async fn routes(&mut self, ns: Resource<NsId>) -> Result<Vec<RouteInfo>, LabError> {
        self.ask(Op::Owned)?;
        let id = *self.table.get(&ns)?;
        Ok(self
            .lab
            .routes(id)
            .await?
            .into_iter()
            .map(|(destination, gateway, device)| RouteInfo {
                destination,
                gateway,
                device,
            })
            .collect())
    }
}
