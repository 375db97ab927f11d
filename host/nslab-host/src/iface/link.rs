use wasmtime::component::Resource;

use super::CallError;
use crate::bindings::link::{Host, HostLink, LinkInfo, Shaping as WitShaping};
use crate::policy::Op;
use nslab_lab::input::{Cidr, Mac, Name};
use nslab_lab::{LinkId, LinkInfoView, NsId, Shaping};

use super::LabView;

fn to_wit(v: LinkInfoView) -> LinkInfo {
    LinkInfo {
        name: v.name,
        index: v.index,
        kind: v.kind,
        up: v.up,
        mtu: v.mtu,
        mac: v.mac,
        addresses: v.addresses,
    }
}

impl LabView<'_> {
    fn link_id(&self, link: &Resource<LinkId>) -> Result<LinkId, CallError> {
        Ok(*self.table.get(link)?)
    }

    fn ns_id(&self, ns: &Resource<NsId>) -> Result<NsId, CallError> {
        Ok(*self.table.get(ns)?)
    }

    /// Links the run holds now (none while there is no lab).
    fn links_held(&self) -> usize {
        self.lab.as_ref().map_or(0, |l| l.links_held())
    }
}

impl HostLink for LabView<'_> {
    async fn veth(
        &mut self,
        a_name: String,
        a_ns: Resource<NsId>,
        b_name: String,
        b_ns: Resource<NsId>,
    ) -> Result<(Resource<LinkId>, Resource<LinkId>), CallError> {
        let (a_name, b_name) = (Name::parse("link", &a_name)?, Name::parse("link", &b_name)?);
        self.ask(Op::CreateLinks {
            held: self.links_held(),
            count: 2,
        })
        .await?;
        let (a_ns, b_ns) = (self.ns_id(&a_ns)?, self.ns_id(&b_ns)?);
        let (a, b) = self.lab().await?.veth(&a_name, a_ns, &b_name, b_ns).await?;
        Ok((self.table.push(a)?, self.table.push(b)?))
    }

    async fn loopback(&mut self, ns: Resource<NsId>) -> Result<Resource<LinkId>, CallError> {
        self.ask(Op::Owned).await?;
        let ns = self.ns_id(&ns)?;
        let id = self.lab().await?.loopback(ns).await?;
        Ok(self.table.push(id)?)
    }

    async fn by_name(
        &mut self,
        ns: Resource<NsId>,
        name: String,
    ) -> Result<Resource<LinkId>, CallError> {
        let name = Name::parse("link", &name)?;
        self.ask(Op::Owned).await?;
        let ns = self.ns_id(&ns)?;
        let id = match name.as_str() {
            "lo" => self.lab().await?.loopback(ns).await?,
            other => self.lab().await?.link_named(ns, other)?,
        };
        Ok(self.table.push(id)?)
    }

    async fn name(&mut self, link: Resource<LinkId>) -> wasmtime::Result<String> {
        self.ask(Op::Owned).await?;
        let id = self.link_id(&link)?;
        // A link whose namespace was deleted keeps the name it had.
        Ok(self
            .lab()
            .await?
            .link_name(id)
            .map(str::to_string)
            .unwrap_or_default())
    }

    async fn info(&mut self, link: Resource<LinkId>) -> Result<LinkInfo, CallError> {
        self.ask(Op::Owned).await?;
        Ok(to_wit({
            let id = self.link_id(&link)?;
            self.lab().await?.link_info(id).await
        }?))
    }

    async fn set_up(&mut self, link: Resource<LinkId>) -> Result<(), CallError> {
        self.ask(Op::Owned).await?;
        {
            let id = self.link_id(&link)?;
            Ok(self.lab().await?.set_up(id, true).await?)
        }
    }

    async fn set_down(&mut self, link: Resource<LinkId>) -> Result<(), CallError> {
        self.ask(Op::Owned).await?;
        {
            let id = self.link_id(&link)?;
            Ok(self.lab().await?.set_up(id, false).await?)
        }
    }

    async fn set_mtu(&mut self, link: Resource<LinkId>, mtu: u32) -> Result<(), CallError> {
        self.ask(Op::Owned).await?;
        {
            let id = self.link_id(&link)?;
            Ok(self.lab().await?.set_mtu(id, mtu).await?)
        }
    }

    async fn set_mac(&mut self, link: Resource<LinkId>, mac: String) -> Result<(), CallError> {
        let mac: Mac = mac.parse()?;
        self.ask(Op::Owned).await?;
        let id = self.link_id(&link)?;
        Ok(self.lab().await?.set_mac(id, mac).await?)
    }

    async fn move_to(
        &mut self,
        link: Resource<LinkId>,
        ns: Resource<NsId>,
    ) -> Result<(), CallError> {
        self.ask(Op::Owned).await?;
        let (link, ns) = (self.link_id(&link)?, self.ns_id(&ns)?);
        Ok(self.lab().await?.move_to(link, ns).await?)
    }

    async fn add_address(&mut self, link: Resource<LinkId>, cidr: String) -> Result<(), CallError> {
        let cidr: Cidr = cidr.parse()?;
        self.ask(Op::Address { cidr: &cidr }).await?;
        let id = self.link_id(&link)?;
        Ok(self.lab().await?.add_address(id, cidr).await?)
    }

    async fn remove_address(
        &mut self,
        link: Resource<LinkId>,
        cidr: String,
    ) -> Result<(), CallError> {
        let cidr: Cidr = cidr.parse()?;
        self.ask(Op::Owned).await?;
        let id = self.link_id(&link)?;
        Ok(self.lab().await?.remove_address(id, cidr).await?)
    }

    async fn bridge(
        &mut self,
        name: String,
        ns: Resource<NsId>,
    ) -> Result<Resource<LinkId>, CallError> {
        let name = Name::parse("link", &name)?;
        self.ask(Op::CreateLinks {
            held: self.links_held(),
            count: 1,
        })
        .await?;
        let ns = self.ns_id(&ns)?;
        let id = self.lab().await?.bridge(&name, ns).await?;
        Ok(self.table.push(id)?)
    }

    async fn set_master(
        &mut self,
        link: Resource<LinkId>,
        bridge: Resource<LinkId>,
    ) -> Result<(), CallError> {
        self.ask(Op::Owned).await?;
        let (link, bridge) = (self.link_id(&link)?, self.link_id(&bridge)?);
        Ok(self.lab().await?.set_master(link, bridge).await?)
    }

    async fn set_shaping(
        &mut self,
        link: Resource<LinkId>,
        s: WitShaping,
    ) -> Result<(), CallError> {
        self.ask(Op::Owned).await?;
        let s = Shaping {
            delay_us: s.delay_us,
            jitter_us: s.jitter_us,
            loss_ppm: s.loss_ppm,
            rate_bps: s.rate_bps,
        };
        {
            let id = self.link_id(&link)?;
            Ok(self.lab().await?.set_shaping(id, s).await?)
        }
    }

    async fn clear_shaping(&mut self, link: Resource<LinkId>) -> Result<(), CallError> {
        self.ask(Op::Owned).await?;
        {
            let id = self.link_id(&link)?;
            Ok(self.lab().await?.clear_shaping(id).await?)
        }
    }

    /// Dropping the handle leaves the interface where it is.
    async fn drop(&mut self, link: Resource<LinkId>) -> wasmtime::Result<()> {
        self.table.delete(link)?;
        Ok(())
    }
}

impl Host for LabView<'_> {
    async fn links(&mut self, ns: Resource<NsId>) -> Result<Vec<LinkInfo>, CallError> {
        self.ask(Op::Owned).await?;
        let ns = self.ns_id(&ns)?;
        let links = self.lab().await?.links_in(ns).await?;
        Ok(links.into_iter().map(to_wit).collect())
    }
}
