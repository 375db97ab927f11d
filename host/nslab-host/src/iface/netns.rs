use wasmtime::component::Resource;

use crate::bindings::netns::{Host, HostNamespace};
use nslab_lab::error::LabError;

use super::CallError;
use crate::policy::Op;
use nslab_lab::input::{FilePath, Name};
use nslab_lab::NsId;

use super::LabView;

impl HostNamespace for LabView<'_> {
    async fn create(&mut self, name: String) -> Result<Resource<NsId>, CallError> {
        let name = Name::parse("namespace", &name)?;
        let held = self.lab.as_ref().map_or(0, |l| l.namespace_count());
        self.ask(Op::CreateNamespace { held }).await?;
        let id = self.lab().await?.create_namespace(&name).await?;
        Ok(self.table.push(id)?)
    }

    async fn name(&mut self, ns: Resource<NsId>) -> wasmtime::Result<String> {
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&ns)?;
        Ok(self
            .lab()
            .await?
            .namespace_name(id)
            .unwrap_or("")
            .to_string())
    }

    async fn inode(&mut self, ns: Resource<NsId>) -> wasmtime::Result<u64> {
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&ns)?;
        Ok(self.lab().await?.namespace_inode(id).unwrap_or(0))
    }

    async fn set_hostname(&mut self, ns: Resource<NsId>, name: String) -> Result<(), CallError> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !name.starts_with(['-', '.']);
        if !valid {
            return Err(LabError::invalid(format!(
                "host name {:?}: use 1-64 of A-Z a-z 0-9 - . not starting with - or .",
                nslab_lab::text::printable(&name)
            ))
            .into());
        }
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&ns)?;
        Ok(self.lab().await?.set_hostname(id, &name).await?)
    }

    async fn set_forwarding(&mut self, ns: Resource<NsId>, on: bool) -> Result<(), CallError> {
        self.ask(Op::Owned).await?;
        let id = *self.table.get(&ns)?;
        Ok(self.lab().await?.set_forwarding(id, on).await?)
    }

    async fn write_file(
        &mut self,
        ns: Resource<NsId>,
        path: String,
        contents: Vec<u8>,
        mode: u32,
    ) -> Result<(), CallError> {
        let path = FilePath::parse(&path)?;
        if mode > 0o7777 {
            return Err(LabError::invalid(format!(
                "file mode {mode:o} for {path}: permission bits are at most 7777 (octal)"
            ))
            .into());
        }
        let written = self.lab.as_ref().map_or(0, |l| l.files_written());
        self.ask(Op::WriteFile {
            bytes: contents.len(),
            written,
        })
        .await?;
        let id = *self.table.get(&ns)?;
        Ok(self
            .lab()
            .await?
            .write_file(id, &path, &contents, mode)
            .await?)
    }

    async fn read_file(&mut self, ns: Resource<NsId>, path: String) -> Result<Vec<u8>, CallError> {
        let path = FilePath::parse(&path)?;
        self.ask(Op::ReadFile).await?;
        let id = *self.table.get(&ns)?;
        let max = self.policy.file_bytes;
        Ok(self.lab().await?.read_file(id, &path, max).await?)
    }

    /// Dropping the handle does not delete the namespace: it lives until `delete` or the end of
    /// the run, and `names()` still lists it.
    async fn drop(&mut self, ns: Resource<NsId>) -> wasmtime::Result<()> {
        self.table.delete(ns)?;
        Ok(())
    }
}

impl Host for LabView<'_> {
    async fn names(&mut self) -> wasmtime::Result<Vec<String>> {
        self.ask(Op::Owned).await?;
        Ok(self.lab().await?.namespace_names())
    }

    async fn delete(&mut self, ns: Resource<NsId>) -> Result<(), CallError> {
        self.ask(Op::Owned).await?;
        let id = self.table.delete(ns)?;
        Ok(self.lab().await?.delete_namespace(id).await?)
    }
}
