/// The scenario's arguments (`runner run lab.wasm -- --hosts 8 --verbose`), read simply:
/// `--name value` or `--name=value` options, and `--flag` switches.
#[derive(Debug, Clone, Default)]
pub struct Args {
    args: Vec<String>,
}

impl Args {
    pub fn new(args: Vec<String>) -> Args {
        Args { args }
    }

    /// The value of `--name`, parsed; `default` when it is absent; an error a person can act on
    /// when it does not parse.
    pub fn get_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.value(name)? {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("argument {name} {v:?} is not valid")),
        }
    }

    /// The text after `--name` (or in `--name=value`), if given.
    pub fn value(&self, name: &str) -> Result<Option<String>, String> {
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if a == name {
                return it
                    .next()
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| format!("argument {name} needs a value"));
            }
            if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                return Ok(Some(v.to_string()));
            }
        }
        Ok(None)
    }

    /// Whether the switch `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }
}
