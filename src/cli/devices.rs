//! `hearken devices`: the audio input devices `hearken listen --mic` can capture from.

use anyhow::Result;

/// Flags of `hearken devices`.
#[derive(clap::Args, Debug)]
pub struct Args {}

#[cfg(feature = "mic")]
pub fn run(_: Args) -> Result<()> {
    let devices = hearken::audio::capture::input_devices()?;
    if devices.is_empty() {
        anyhow::bail!("no audio input device found (this machine has no sound card?)");
    }
    let mut o = String::new();
    for d in devices {
        outln!(
            o,
            "{}{}  rate {}  channels {}  formats {}",
            if d.is_default { "* " } else { "  " },
            d.name,
            d.default_sample_rate_hz
                .map_or("?".to_string(), |r| format!("{r} Hz")),
            d.default_channels
                .map_or("?".to_string(), |c| c.to_string()),
            d.sample_formats.join(",")
        );
    }
    super::out::print(&o)
}

#[cfg(not(feature = "mic"))]
pub fn run(_: Args) -> Result<()> {
    anyhow::bail!(
        "microphone capture is not in this build: rebuild with `--features mic` (needs \
         Debian's libasound2-dev)"
    )
}
