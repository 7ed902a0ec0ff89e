"""The few-shot separation model: a FiLM-conditioned U-Net mask estimator and its conditioning.

Wang et al. (2022) condition a C-U-Net on the average embedding of a few example clips; negative
examples join through concat -> FC -> ReLU. The U-Net sees one audio channel at a time (stereo and
multichannel inputs are a batch of channels), a log-magnitude spectrogram of the lowest ``bins``
STFT bins, and predicts a sigmoid mask; bins above are masked with the mean of the top modelled
bins, as Spleeter extends its mask. Everything the mask depends on is fixed after training (no
per-chunk statistics), so chunked processing equals whole-track processing away from the seams.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mss_cli.audio import SAMPLE_RATE


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; stored as JSON metadata beside the weights."""

    kind: Literal["fewshot", "classcond"] = (
        "fewshot"  # "fewshot" (example clips) or "classcond" (a class id: the paper's baseline)
    )
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048
    hop: int = 512
    bins: int = 512  # modelled bins: 0..11 kHz at 44.1 kHz / n_fft 2048
    channels: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 128, 256])
    embed_dim: int = 128
    cond_dim: int = 128
    time_kernel: int = 3  # U-Net kernels are 5 (frequency) x time_kernel: a short time context keeps chunks seamless
    # "encoder": FiLM on every encoder block (C-U-Net); "bottleneck": the last one only
    film: Literal["encoder", "bottleneck"] = "encoder"
    dropout: float = 0.3  # in the first three decoder blocks, in training (Spleeter's and C-U-Net's value)
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    # The gated levels (dBFS, ``mss_cli.level``) of the training episodes' mixtures and example clips
    # (the medians of 300 training-split episodes of the data builder's renders; mss_research.probes.level
    # prints them). Inputs are shown to the network at these levels; None leaves them as they come.
    mixture_dbfs: float | None = -20.8
    clip_dbfs: float | None = -31.4

    def __post_init__(self) -> None:
        """Refuse a config no model of ours has (a damaged or hostile weights file): before any
        tensor is built, so that a hop of 0 or 200,000 channels never reaches torch or the memory."""

        def whole(name: str, value: object, low: int, high: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} {value!r}: a whole number from {low} to {high}")

        def level(name: str, value: object) -> None:
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not -120.0 <= value <= 0.0
            ):
                raise ValueError(f"{name} {value!r}: a level from -120 to 0 dBFS, or null")

        if self.kind not in ("fewshot", "classcond"):
            raise ValueError(f"kind {self.kind!r}: fewshot or classcond")
        if self.film not in ("encoder", "bottleneck"):
            raise ValueError(f"unknown FiLM placement {self.film!r} (encoder or bottleneck)")
        whole("sample_rate", self.sample_rate, 8000, 192_000)
        whole("n_fft", self.n_fft, 64, 16_384)
        whole("hop", self.hop, 1, self.n_fft)
        whole("bins", self.bins, 1, self.stft_bins)
        if (
            not isinstance(self.channels, list)
            or not 1 <= len(self.channels) <= 8
            or any(isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 1024 for w in self.channels)
        ):
            raise ValueError(f"U-Net widths {self.channels!r}: 1 to 8 whole numbers from 1 to 1024")
        whole("embed_dim", self.embed_dim, 1, 4096)
        whole("cond_dim", self.cond_dim, 1, 4096)
        whole("time_kernel", self.time_kernel, 1, 15)
        whole("num_classes", self.num_classes, 0, 10_000)
        if not isinstance(self.class_names, list) or not all(isinstance(n, str) for n in self.class_names):
            raise ValueError("class_names: a list of names")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout {self.dropout!r}: from 0 to below 1")
        level("mixture_dbfs", self.mixture_dbfs)
        level("clip_dbfs", self.clip_dbfs)

    @property
    def stft_bins(self) -> int:
        """Frequency bins of the STFT (the mask covers all of them; the network models ``bins``)."""
        return self.n_fft // 2 + 1

    @property
    def frame_multiple(self) -> int:
        """Spectrogram frames must be a multiple of this for the U-Net's stride-2 stack."""
        return 2 ** len(self.channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Spectrogram(nn.Module):
    """STFT front end shared by the separator and the example encoder."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def stft(self, audio: Tensor) -> Tensor:
        """(batch, samples) -> complex (batch, n_fft//2+1, frames)."""
        return torch.stft(audio, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)

    def istft(self, spec: Tensor, length: int) -> Tensor:
        """Inverse of ``stft`` (as ``torch.istft(..., center=True, length=length)``), written out
        because n_fft is a multiple of hop here: the frames' overlap-add is then a sum of
        n_fft/hop shifted copies of a (batch, frames, hop) tensor, which on 2 CPU threads runs in
        about half torch.istft's time (it was the largest single cost of a separation)."""
        if self.n_fft % self.hop:
            return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=length)
        ratio = self.n_fft // self.hop
        frames = torch.fft.irfft(spec.transpose(1, 2), n=self.n_fft, dim=2) * self.window  # (B, T, n_fft)
        batch, count, _ = frames.shape
        pieces = frames.reshape(batch, count, ratio, self.hop)
        squares = (self.window**2).reshape(ratio, self.hop)
        out = frames.new_zeros(batch, count + ratio - 1, self.hop)
        envelope = squares.new_zeros(count + ratio - 1, self.hop)
        for k in range(ratio):  # piece k of frame t lands in output block t + k
            out[:, k : k + count] += pieces[:, :, k]
            envelope[k : k + count] += squares[k]
        start = self.n_fft // 2  # center=True padded n_fft/2 samples on the left
        out = out.reshape(batch, -1)[:, start : start + length]
        envelope = envelope.reshape(-1)[start : start + length]
        if out.shape[1] < length:  # as torch.istft, samples past the last frame are zeros
            out, envelope = (
                F.pad(out, (0, length - out.shape[1])),
                F.pad(envelope, (0, length - envelope.shape[0]), value=1.0),
            )
        return out / envelope.clamp_min(1e-11)


def log_magnitude(spec: Tensor, bins: int, gain: float = 1.0) -> Tensor:
    """Compressed magnitude of the modelled bins, of the signal scaled by ``gain``:
    (batch, F, T) -> (batch, 1, bins, T)."""
    return torch.log1p(spec[:, :bins].abs() * gain).unsqueeze(1)


class ExampleEncoder(nn.Module):
    """Embeds one example window (log-magnitude) into a vector. Timbre lives in frequency, so the
    frequency axis is kept (only downsampled) while time is pooled with mean and max. The input is
    first average-pooled (4 bins x 2 frames): examples are many per episode, and at full resolution
    the encoder would cost several times the U-Net."""

    POOL = (4, 2)

    def __init__(self, bins: int, embed_dim: int) -> None:
        super().__init__()
        widths = [32, 64, 96, 128]
        layers: list[nn.Module] = []
        cin = 1
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            cin = w
        self.convs = nn.Sequential(*layers)
        freq = -(-bins // self.POOL[0] // 2 ** len(widths))
        self.proj = nn.Sequential(nn.Linear(2 * cin * freq, 256), nn.ReLU(), nn.Linear(256, embed_dim))

    def forward(self, logmag: Tensor) -> Tensor:
        """(windows, 1, bins, T) -> (windows, embed_dim)."""
        h = self.convs(F.avg_pool2d(logmag, self.POOL, ceil_mode=True))
        pooled = torch.cat([h.mean(dim=3), h.amax(dim=3)], dim=1)
        return self.proj(pooled.flatten(1))


class UNet(nn.Module):
    """C-U-Net: stride-2 convolutions (5 x time_kernel), leaky ReLU encoder with FiLM, ReLU decoder with skips."""

    def __init__(self, channels: list[int], time_kernel: int, dropout: float = 0.3) -> None:
        super().__init__()
        kernel, pad = (5, time_kernel), (2, time_kernel // 2)
        self.encoder = nn.ModuleList()
        self.enc_norm = nn.ModuleList()
        cin = 1
        for c in channels:
            self.encoder.append(nn.Conv2d(cin, c, kernel, stride=2, padding=pad))
            self.enc_norm.append(nn.BatchNorm2d(c, affine=False))
            cin = c
        self.decoder = nn.ModuleList()
        self.dec_norm = nn.ModuleList()
        self.dropout = nn.Dropout(dropout)
        rev = channels[::-1]
        outs = rev[1:] + [1]
        for i, (c, o) in enumerate(zip(rev, outs)):
            cin = c if i == 0 else 2 * c
            self.decoder.append(nn.ConvTranspose2d(cin, o, kernel, stride=2, padding=pad, output_padding=1))
            self.dec_norm.append(nn.BatchNorm2d(o) if o > 1 else nn.Identity())

    def forward(self, x: Tensor, films: list[tuple[Tensor, Tensor] | None]) -> Tensor:
        """x: (B, 1, F, T) features; films[i]: (gamma, beta) of shape (B, C_i) or None. Returns the mask."""
        skips = []
        for conv, norm, film in zip(self.encoder, self.enc_norm, films):
            x = norm(conv(x))
            if film is not None:
                gamma, beta = film
                x = x * gamma[:, :, None, None] + beta[:, :, None, None]
            x = F.leaky_relu(x, 0.2)
            skips.append(x)
        last = len(self.decoder) - 1
        for i, (deconv, norm) in enumerate(zip(self.decoder, self.dec_norm)):
            if i > 0:
                x = torch.cat([x, skips[-1 - i]], dim=1)
            x = norm(deconv(x))
            if i < last:
                x = F.relu(x)
                if i < 3:
                    x = self.dropout(x)
        return torch.sigmoid(x)


class ConditionedUNet(nn.Module):
    """U-Net + FiLM generator + conditioning (example encoder for few-shot, class table for baseline)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.spectrogram = Spectrogram(config.n_fft, config.hop)
        # Fixed after training (open-unmix style): normalises features without per-chunk statistics.
        self.input_mean = nn.Parameter(torch.zeros(config.bins))
        self.input_scale = nn.Parameter(torch.ones(config.bins))
        if config.bins % 2 ** len(config.channels):
            raise ValueError(
                f"U-Net widths {config.channels}: 1 to {config.bins.bit_length() - 1} positive widths "
                f"(each block halves the {config.bins} frequency bins)"
            )
        self.unet = UNet(config.channels, config.time_kernel, config.dropout)
        film_channels = config.channels if config.film == "encoder" else config.channels[-1:]
        self.film_sizes = list(film_channels)
        self.film = nn.Linear(config.cond_dim, 2 * sum(film_channels))
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        if config.kind == "fewshot":
            self.encoder = ExampleEncoder(config.bins, config.embed_dim)
            self.null_negative = nn.Parameter(torch.zeros(config.embed_dim))
            self.combine = nn.Sequential(nn.Linear(2 * config.embed_dim, config.cond_dim), nn.ReLU())
        elif config.kind == "classcond":
            self.class_table = nn.Embedding(config.num_classes, config.cond_dim)
        else:
            raise ValueError(f"unknown model kind {config.kind!r}")

    @property
    def device(self) -> torch.device:
        """Where the weights live: inputs (audio, example clips, class ids) go there too."""
        return self.input_mean.device

    # --- conditioning ----------------------------------------------------------------------------

    def features(self, audio: Tensor, gain: float = 1.0) -> tuple[Tensor, Tensor]:
        """(batch, samples) -> (complex spectrogram, normalised log-magnitude features).

        ``gain``: the features are those of the audio scaled by it, the spectrogram (which the mask
        applies to) that of the audio as it is. The features are not scale-free, so a track is
        shown to the network at the level the model trained at (``mss_cli.level``) while the
        output keeps the track's own level."""
        spec = self.spectrogram.stft(audio)
        return spec, self.features_of(spec, gain)

    def features_of(self, spec: Tensor, gain: float = 1.0) -> Tensor:
        """The normalised log-magnitude features of a complex spectrogram made by this model's
        transform: models with the same transform share one STFT (``make_separator``'s partners)."""
        return (log_magnitude(spec, self.config.bins, gain) - self.input_mean[:, None]) * self.input_scale[:, None]

    def embed_windows(self, windows: Tensor) -> Tensor:
        """Mono example windows (N, samples) -> embeddings (N, embed_dim)."""
        return self.encoder(self.features(windows)[1])

    def conditioning(
        self,
        positive: Tensor,
        negative: Tensor | None = None,
        positive_valid: Tensor | None = None,
        negative_valid: Tensor | None = None,
    ) -> Tensor:
        """Average positive (and negative) embeddings (B, K, E) -> conditioning vector (B, cond_dim).

        ``*_valid`` (B, K) masks padded examples in a training batch. Where a row has no negatives
        a learned 'no negatives' vector stands in, so one model serves both cases.
        """
        z_pos = masked_mean(positive, positive_valid)
        z_neg = self.null_negative.expand_as(z_pos)
        if negative is not None and negative.shape[1] > 0:
            valid = (
                negative_valid
                if negative_valid is not None
                else torch.ones(negative.shape[:2], dtype=torch.bool, device=negative.device)
            )
            has = valid.any(dim=1, keepdim=True)
            z_neg = torch.where(has, masked_mean(negative, valid), z_neg)
        return self.combine(torch.cat([z_pos, z_neg], dim=1))

    def unwanted_conditioning(self, positive: Tensor, negative: Tensor) -> Tensor:
        """Embeddings, positives (P, E) and unwanted instruments (M, E) -> (M, cond_dim): one vector
        per unwanted instrument asking for it, with the positives as its negatives.

        The model's own negative input only nudges the target's FiLM, and a mean over clips of
        several instruments blurs it (+0.1 dB measured). Separating each unwanted instrument in its
        own right and removing what it claims from the target's mask (``take_out``) uses the
        negatives far more (`experiments/suppression.md`)."""
        return self.conditioning(negative[:, None], positive[None].expand(negative.shape[0], -1, -1))

    def class_conditioning(self, class_ids: Tensor) -> Tensor:
        return self.class_table(class_ids)

    # --- separation ------------------------------------------------------------------------------

    def films(self, cond: Tensor) -> list[tuple[Tensor, Tensor] | None]:
        params = self.film(cond)
        out: list[tuple[Tensor, Tensor] | None] = []
        offset = 0
        for c in self.film_sizes:
            gamma = 1.0 + params[:, offset : offset + c]
            beta = params[:, offset + c : offset + 2 * c]
            out.append((gamma, beta))
            offset += 2 * c
        pad = len(self.config.channels) - len(out)
        return [None] * pad + out

    def mask(self, feats: Tensor, cond: Tensor, shifts: int = 1) -> Tensor:
        """Features (B, 1, bins, T), conditioning (B, cond_dim) -> mask over all STFT bins (B, F, T).

        ``shifts`` > 1 averages the masks of that many passes, the frames delayed by evenly spaced
        offsets within the U-Net's pooling period (``frame_multiple`` frames): each of its six
        stride-2 levels sees the music on another grid, and their errors partly cancel (demucs's
        "shift trick", here on spectrogram frames, so the STFT is computed once). The offsets are
        fixed, so the result is deterministic and chunked processing still equals the whole track."""
        frames = feats.shape[-1]
        multiple = self.config.frame_multiple
        films = self.films(cond)
        total = 0.0
        for i in range(shifts):
            delay = i * multiple // shifts
            padded = -(-(frames + delay) // multiple) * multiple
            shifted = F.pad(feats, (delay, padded - frames - delay)) if padded != frames else feats
            # float32 whatever autocast ran the U-Net in: a bfloat16 mask times the complex64 STFT is slow.
            total = total + self.unet(shifted, films)[:, 0, :, delay : delay + frames].float()
        return extend_mask(total / shifts, self.config.stft_bins)

    def apply_mask(self, spec: Tensor, mask: Tensor, length: int) -> Tensor:
        """Complex STFT (B, F, T) times a real mask (B, F, T) -> time signal (B, length)."""
        # Masking on the real view: complex x real multiplication would first make the mask complex.
        return self.spectrogram.istft(torch.view_as_complex(torch.view_as_real(spec) * mask.unsqueeze(-1)), length)

    def forward(self, audio: Tensor, cond: Tensor) -> Tensor:
        """Mono signals (B, samples) and their conditioning (B, cond_dim) -> target estimate (B, samples)."""
        spec, feats = self.features(audio)
        return self.apply_mask(spec, self.mask(feats, cond), audio.shape[-1])


def extend_mask(mask: Tensor, stft_bins: int) -> Tensor:
    """A mask of the modelled bins (B, bins, T) -> all ``stft_bins`` (B, F, T): the bins above
    take the mean of the top sixteenth of the modelled ones, as Spleeter extends its mask."""
    bins = mask.shape[1]
    top = mask[:, -max(1, bins // 16) :].mean(dim=1, keepdim=True)
    return torch.cat([mask, top.expand(-1, stft_bins - bins, -1)], dim=1)


def check_same_transform(model: ConditionedUNet, other: ConditionedUNet) -> None:
    """Masks can be averaged only between models on one STFT grid, chunk alignment and device."""
    from mss_cli.errors import UsageError

    keys = ("sample_rate", "n_fft", "hop", "frame_multiple")
    mine, theirs = ({k: getattr(m.config, k) for k in keys} for m in (model, other))
    if mine != theirs:
        raise UsageError(f"these two models cannot be averaged: their transforms differ ({mine} vs {theirs})")
    if other.device != model.device:
        raise UsageError(f"these two models are on different devices ({model.device}, {other.device})")


def take_out(mask: Tensor, unwanted: Tensor) -> Tensor:
    """Take out of the target's ``mask`` what the mask of an unwanted instrument claims: at each
    time-frequency bin the target keeps ``sqrt(1 - unwanted)`` of its share. ``unwanted`` is the
    bin-wise maximum over the negatives' masks (several negatives of one instrument do not compound).

    Chosen on validation episodes other than the table's, among products with (1 - unwanted)^p
    (p 0.25-2), 1 - unwanted/2, 1 - unwanted^2, a probabilistic OR over the negatives, a ratio mask
    and a minimum: p = 1 gains most SDR (+0.50 dB over 5 positives alone) but colours the target
    (SI-SDR -0.14 dB); the square root gains +0.44 dB, more often (208 of 300 episodes), with SI-SDR
    level (+0.06 dB). (`experiments/suppression.md`)."""
    return mask * (1.0 - unwanted).clamp_min(0.0).sqrt()


@torch.no_grad()
def fold_batch_norm(conv: nn.Module, norm: nn.Module, out_dim: int) -> None:
    """Fold an eval-mode batch norm into the preceding convolution (``out_dim``: the weight's output
    axis: 0 for Conv2d, 1 for ConvTranspose2d). The pair then computes the same in one op."""
    scale = torch.rsqrt(norm.running_var + norm.eps)
    shift = -norm.running_mean * scale
    if norm.affine:
        shift = shift * norm.weight + norm.bias
        scale = scale * norm.weight
    shape = [1] * conv.weight.dim()
    shape[out_dim] = -1
    conv.weight.mul_(scale.reshape(shape))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    conv.bias = nn.Parameter(bias * scale + shift)


def fuse_for_inference(model: ConditionedUNet) -> ConditionedUNet:
    """Fold every batch norm into its convolution: identical output, fewer passes over memory.
    Only for inference (the statistics are frozen); the model is left in eval mode."""
    model.eval()
    unet = model.unet
    for i, (conv, norm) in enumerate(zip(unet.encoder, unet.enc_norm)):
        if isinstance(norm, nn.BatchNorm2d):
            fold_batch_norm(conv, norm, 0)
            unet.enc_norm[i] = nn.Identity()
    for i, (deconv, norm) in enumerate(zip(unet.decoder, unet.dec_norm)):
        if isinstance(norm, nn.BatchNorm2d):
            fold_batch_norm(deconv, norm, 1)
            unet.dec_norm[i] = nn.Identity()
    if hasattr(model, "encoder"):
        layers = list(model.encoder.convs)
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.BatchNorm2d):
                fold_batch_norm(layers[i - 1], layer, 0)
                layers[i] = nn.Identity()
        model.encoder.convs = nn.Sequential(*layers)
    return model


@torch.no_grad()
def bind_conditioning(model: ConditionedUNet, cond: Tensor) -> ConditionedUNet:
    """A fused inference copy of ``model`` with one conditioning vector (1, cond_dim) folded in.

    FiLM is a per-channel affine map right after each (batch-norm-folded) encoder convolution, so
    for a fixed vector it is part of that convolution's weights and bias: a separation run, which
    uses one vector for the whole track, then skips six full-resolution multiply-adds. The copy
    ignores the ``cond`` argument of ``forward``; the original model is left untouched.
    """
    films = model.films(cond[:1].to(model.device))
    bound = fuse_for_inference(copy.deepcopy(model))
    for conv, film in zip(bound.unet.encoder, films):
        if film is not None:
            gamma, beta = film[0][0], film[1][0]
            conv.weight.mul_(gamma[:, None, None, None])
            conv.bias = nn.Parameter(conv.bias * gamma + beta)
    bound.film_sizes = []  # films() now yields no FiLM at all
    # Channels-last convolution weights make oneDNN run the U-Net in NHWC: 6-18% faster on 2 CPU threads.
    return bound.to(memory_format=torch.channels_last)


def masked_mean(x: Tensor, valid: Tensor | None) -> Tensor:
    """Mean over dim 1 of (B, K, E), counting only valid entries (at least one per row)."""
    if valid is None:
        return x.mean(dim=1)
    w = valid.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)
