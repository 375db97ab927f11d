use wasmtime::component::Resource;

use super::CallError;
use crate::bindings::route::{Host, NextHop, RouteDetail, RouteInfo};
use crate::policy::Op;
use nslab_lab::input::RouteSpec;
use nslab_lab::NsId;

use super::LabView;

fn parse(r: &RouteInfo) -> Result<RouteSpec, CallError> {
    Ok(RouteSpec::parse(
        &r.destination,
        r.gateway.as_deref(),
        r.device.as_deref(),
    )?)
}

impl Host for LabView<'_> {
    async fn add(&mut self, ns: Resource<NsId>, r: RouteInfo) -> Result<(), CallError> {
        let spec = parse(&r)?;
        self.ask(Op::Route {
            gateway: spec.gateway,
        })
        .await?;
        let id = *self.table.get(&ns)?;
        Ok(self.lab().await?.add_route(id, &spec).await?)
    }

    async fn remove(&mut self, ns: Resource<NsId>, r: RouteInfo) -> Result<(), CallError> {
        let spec = parse(&r)?;
        self.ask(Op::Route {
            gateway: spec.gateway,
        })
        .await?;
        let id = *self.table.get(&ns)?;
        Ok(self.lab().await?.remove_route(id, &spec).await?)
    }

    async fn routes(&mut self, ns: Resource<NsId>) -> Result<Vec<RouteInfo>, CallError> {
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&ns)?;
        Ok(self
            .lab()
            .await?
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

    async fn route_details(&mut self, ns: Resource<NsId>) -> Result<Vec<RouteDetail>, CallError> {
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&ns)?;
        Ok(self
            .lab()
            .await?
            .route_details(id)
            .await?
            .into_iter()
            .map(|r| RouteDetail {
                destination: nslab_lab::input::destination_text(&r.destination),
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
