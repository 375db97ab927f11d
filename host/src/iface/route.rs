use wasmtime::component::Resource;

use crate::bindings::route::{Host, NextHop, RouteDetail, RouteInfo};
use crate::error::LabError;
use crate::input::RouteSpec;
use crate::lab::NsId;
use crate::policy::Op;

use super::LabView;

fn parse(r: &RouteInfo) -> Result<RouteSpec, LabError> {
    RouteSpec::parse(&r.destination, r.gateway.as_deref(), r.device.as_deref())
}

impl Host for LabView<'_> {
    async fn add(&mut self, ns: Resource<NsId>, r: RouteInfo) -> Result<(), LabError> {
        let spec = parse(&r)?;
        self.ask(Op::Route {
            gateway: spec.gateway,
        })?;
        let id = *self.table.get(&ns)?;
        self.lab()?.add_route(id, &spec).await
    }

    async fn remove(&mut self, ns: Resource<NsId>, r: RouteInfo) -> Result<(), LabError> {
        let spec = parse(&r)?;
        self.ask(Op::Route {
            gateway: spec.gateway,
        })?;
        let id = *self.table.get(&ns)?;
        self.lab()?.remove_route(id, &spec).await
    }

    async fn routes(&mut self, ns: Resource<NsId>) -> Result<Vec<RouteInfo>, LabError> {
        self.ask(Op::Owned)?;
        let id = *self.table.get(&ns)?;
        Ok(self
            .lab()?
            .routes(id)
            .await?
            .into_iter()
            .map(|r| RouteInfo {
                destination: r.destination_text(),
                gateway: r.gateway.map(|g| g.to_string()),
                device: r.device,
            })
            .collect())
    }

    async fn route_details(&mut self, ns: Resource<NsId>) -> Result<Vec<RouteDetail>, LabError> {
        self.ask(Op::Owned)?;
        let id = *self.table.get(&ns)?;
        Ok(self
            .lab()?
            .route_details(id)
            .await?
            .into_iter()
            .map(|r| RouteDetail {
                destination: crate::input::destination_text(&r.destination),
                protocol: r.protocol,
                metric: r.metric,
                table: r.table,
                next_hops: r
                    .hops
                    .into_iter()
                    .map(|(gateway, device, weight)| NextHop {
                        gateway: gateway.map(|g| g.to_string()),
                        device,
                        weight,
                    })
                    .collect(),
            })
            .collect())
    }
}
