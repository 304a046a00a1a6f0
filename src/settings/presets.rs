//! The seed's four example set-ups, as commented settings files (`guichet init`).

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    Startup,
    Enterprise,
    Technical,
    Secure,
}

pub fn render(preset: Preset) -> String {
    let _ = preset;
    unimplemented!("presets")
}
