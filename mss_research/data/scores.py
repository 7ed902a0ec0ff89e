"""Symbolic works to render: generated popular-style arrangements and music21 corpus pieces.

A work is a list of stems, each a class name plus timed notes (seconds). Keeping scores as plain
note lists (not MIDI files) lets the renderer drive FluidSynth directly and sidesteps MIDI
tick-resolution pitfalls of long music21 exports.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mss_research.data.taxonomy import InstrumentClass, Taxonomy


@dataclass
class Note:
    start: float
    duration: float
    pitch: int
    velocity: int


@dataclass
class Stem:
    instrument: str
    role: str
    notes: list[Note] = field(default_factory=list)


@dataclass
class Work:
    work_id: str
    source: str
    stems: list[Stem]

    @property
    def duration(self) -> float:
        return max((n.start + n.duration for s in self.stems for n in s.notes), default=0.0)


# --- harmony -------------------------------------------------------------------------------------

MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]
PROGRESSIONS = [  # scale degrees (0-based), one chord per bar
    [0, 4, 5, 3],
    [0, 5, 3, 4],
    [5, 3, 0, 4],
    [0, 3, 4, 3],
    [1, 4, 0, 0],
    [0, 3, 0, 4],
    [0, 6, 5, 4],
    [0, 0, 3, 4],
    [5, 4, 3, 4],
    [0, 2, 3, 4],
    [0, 4, 5, 2, 3, 0, 3, 4],
]
STYLES = ["rock", "pop", "funk", "electronic", "jazz", "ballad", "reggae", "shuffle"]


def chord_tones(key: int, scale: list[int], degree: int, seventh: bool) -> list[int]:
    """Pitch classes (as offsets from C) of the diatonic chord on ``degree``."""
    count = 4 if seventh else 3
    return [(key + scale[(degree + 2 * i) % 7] + 12 * ((degree + 2 * i) // 7)) for i in range(count)]


def fit(pitch: int, low: int, high: int) -> int:
    """Move a pitch by octaves into [low, high] (instruments only play their range)."""
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return max(low, min(high, pitch))


def voicing(tones: list[int], inst: InstrumentClass, rng: random.Random) -> list[int]:
    """A close voicing of the chord around the lower middle of the instrument's range."""
    centre = inst.low + (inst.high - inst.low) * rng.uniform(0.3, 0.55)
    base = int(centre) - (int(centre) - tones[0]) % 12
    return sorted({fit(base + (t - tones[0]), inst.low, inst.high) for t in tones})


# --- drums ---------------------------------------------------------------------------------------

KICK, SNARE, RIM, CLAP, HAT, PEDAL, OPEN, CRASH, RIDE = 36, 38, 37, 39, 42, 44, 46, 49, 51
TOMS = [50, 48, 47, 45, 43, 41]
GROOVES: dict[str, dict[int, list[int]]] = {  # instrument -> 16th steps in a 4/4 bar
    "rock": {KICK: [0, 8, 10], SNARE: [4, 12], HAT: [0, 2, 4, 6, 8, 10, 12, 14]},
    "pop": {KICK: [0, 6, 8], SNARE: [4, 12], HAT: list(range(16))},
    "funk": {KICK: [0, 3, 10], SNARE: [4, 12, 7, 15], HAT: list(range(16))},
    "electronic": {KICK: [0, 4, 8, 12], CLAP: [4, 12], OPEN: [2, 6, 10, 14], HAT: [0, 4, 8, 12]},
    "jazz": {RIDE: [0, 4, 7, 8, 12, 15], PEDAL: [4, 12], KICK: [0]},
    "ballad": {KICK: [0, 10], SNARE: [8], HAT: [0, 2, 4, 6, 8, 10, 12, 14]},
    "reggae": {KICK: [8], RIM: [8], HAT: [0, 2, 4, 6, 8, 10, 12, 14]},
    "shuffle": {KICK: [0, 8], SNARE: [4, 12], HAT: [0, 3, 4, 7, 8, 11, 12, 15]},
}


def drum_part(style: str, bars: int, step: float, rng: random.Random) -> list[Note]:
    groove = GROOVES[style]
    notes: list[Note] = []
    for bar in range(bars):
        t0 = bar * 16 * step
        fill = bar % 4 == 3 and rng.random() < 0.5
        for inst, steps in groove.items():
            for s in steps:
                if fill and s >= 8:
                    continue
                ghost = inst == SNARE and s % 4 != 0
                vel = 45 if ghost else (110 if s % 4 == 0 else 85)
                notes.append(Note(t0 + s * step, step, inst, vel))
        if fill:
            toms = rng.sample(TOMS, 3) + [SNARE]
            for s in range(8, 16):
                notes.append(Note(t0 + s * step, step, toms[(s - 8) // 2 % 4], 95))
        if bar % 8 == 0:
            notes.append(Note(t0, 4 * step, CRASH, 105))
    return notes


# --- pitched parts -------------------------------------------------------------------------------


def bass_part(
    chords: list[list[int]], style: str, inst: InstrumentClass, step: float, rng: random.Random
) -> list[Note]:
    notes: list[Note] = []
    pattern = rng.choice(["eighths", "root5", "sync", "whole", "octave"]) if style != "jazz" else "walk"
    for bar, tones in enumerate(chords):
        t0 = bar * 16 * step
        root = fit(tones[0], inst.low, inst.low + 14)
        fifth = fit(root + 7, inst.low, inst.high)
        if pattern == "eighths":
            hits = [(s, root, 2) for s in range(0, 16, 2)]
        elif pattern == "root5":
            hits = [(0, root, 6), (6, fifth, 2), (8, root, 6), (14, fifth, 2)]
        elif pattern == "sync":
            hits = [
                (0, root, 3),
                (3, root, 3),
                (10, fifth, 2),
                (12, root, 2),
                (14, root + 12 if root + 12 <= inst.high else root, 2),
            ]
        elif pattern == "octave":
            hits = [(s, root + (12 if s % 4 == 2 and root + 12 <= inst.high else 0), 2) for s in range(0, 16, 2)]
        elif pattern == "whole":
            hits = [(0, root, 14)]
        else:
            walk = [root, fit(tones[1], inst.low, inst.high), fifth, root + rng.choice([-1, 1, 2])]
            hits = [(4 * i, fit(p, inst.low, inst.high), 4) for i, p in enumerate(walk)]
        notes += [Note(t0 + s * step, d * step * 0.95, p, rng.randint(80, 110)) for s, p, d in hits]
    return notes


def comp_part(
    chords: list[list[int]], style: str, inst: InstrumentClass, step: float, rng: random.Random
) -> list[Note]:
    pattern = rng.choice(
        {"reggae": ["skank"], "funk": ["stabs16", "skank"], "ballad": ["whole", "arp"], "jazz": ["stabs", "whole"]}.get(
            style, ["whole", "strum", "arp", "stabs", "strum"]
        )
    )
    strum = 0.012 if inst.family == "guitar" else 0.0
    notes: list[Note] = []
    for bar, tones in enumerate(chords):
        t0 = bar * 16 * step
        voice = voicing(tones, inst, rng)
        if pattern == "arp":
            order = voice + voice[-2:0:-1]
            hits = [(s, [order[i % len(order)]], 2) for i, s in enumerate(range(0, 16, 2))]
        else:
            steps = {
                "whole": [(0, 16)],
                "strum": [(s, 2) for s in (0, 2, 3, 6, 8, 10, 11, 14)],
                "stabs": [(0, 2), (6, 2), (10, 2)],
                "stabs16": [(s, 1) for s in (0, 3, 6, 10, 13)],
                "skank": [(4, 2), (12, 2)],
            }[pattern]
            hits = [(s, voice, d) for s, d in steps]
        for s, pitches, d in hits:
            vel = rng.randint(60, 100)
            for i, p in enumerate(pitches):
                notes.append(Note(t0 + s * step + i * strum, d * step * 0.92, p, vel))
    return notes


def melody_part(
    chords: list[list[int]],
    key: int,
    scale: list[int],
    inst: InstrumentClass,
    step: float,
    rng: random.Random,
    sparse: bool,
) -> list[Note]:
    """A phrase-structured melody: a 2-bar rhythm motif reused, pitches walking near chord tones."""
    lengths = [4, 8] if sparse else [1, 2, 2, 3, 4, 6]
    motif: list[tuple[int, int]] = []
    s = rng.choice([0, 0, 2, 4])
    while s < 32:
        d = rng.choice(lengths)
        if rng.random() > 0.2:
            motif.append((s, min(d, 32 - s)))
        s += d
    span = inst.high - inst.low
    pitch = inst.low + span // 2
    scale_pitches = [p for p in range(inst.low, inst.high + 1) if (p - key) % 12 in scale]
    notes: list[Note] = []
    for phrase in range(0, len(chords), 2):
        for s, d in motif:
            bar = phrase + s // 16
            if bar >= len(chords):
                break
            tones = {t % 12 for t in chords[bar]}
            target = pitch + rng.choice([-4, -2, -1, 0, 1, 2, 4])
            candidates = [p for p in scale_pitches if abs(p - target) <= 4] or scale_pitches
            chordy = [p for p in candidates if p % 12 in tones]
            pitch = rng.choice(chordy if chordy and s % 4 == 0 else candidates)
            pitch = max(inst.low + span // 6, min(inst.high - span // 6, pitch))
            notes.append(Note((phrase * 16 + s) * step, d * step * 0.9, pitch, rng.randint(70, 110)))
    return notes


def pop_arrangement(work_id: str, taxonomy: Taxonomy, rng: random.Random, seconds: float = 30.0) -> Work:
    """A random song: drums, bass, one or two comping instruments, lead and counter-lines."""
    style = rng.choice(STYLES)
    bpm = rng.uniform(70, 150) if style != "ballad" else rng.uniform(60, 85)
    step = 60.0 / bpm / 4
    bars = max(4, round(seconds / (16 * step)))
    key = rng.randrange(12)
    scale = MAJOR if rng.random() < 0.6 else MINOR
    prog = rng.choice(PROGRESSIONS)
    seventh = style in ("jazz", "funk") or rng.random() < 0.2
    chords = [chord_tones(key, scale, prog[b % len(prog)], seventh) for b in range(bars)]

    used: set[str] = set()

    def pick(role: str) -> InstrumentClass:
        options = [c for c in taxonomy.with_role(role) if c.name not in used and not c.is_drums]
        choice = rng.choice(options)
        used.add(choice.name)
        return choice

    stems: list[Stem] = []
    if rng.random() < 0.9:
        stems.append(Stem("drums", "drums", drum_part(style, bars, step, rng)))
        used.add("drums")
    if rng.random() < 0.95:
        inst = pick("bass") if rng.random() < 0.2 else taxonomy.get("bass")
        used.add(inst.name)
        stems.append(Stem(inst.name, "bass", bass_part(chords, style, inst, step, rng)))
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        inst = pick("chords")
        stems.append(Stem(inst.name, "chords", comp_part(chords, style, inst, step, rng)))
    for _ in range(rng.choice([0, 1, 1, 1, 2])):
        inst = pick("lead")
        stems.append(Stem(inst.name, "lead", melody_part(chords, key, scale, inst, step, rng, sparse=False)))
    if rng.random() < 0.4:
        inst = pick("line")
        stems.append(Stem(inst.name, "line", melody_part(chords, key, scale, inst, step, rng, sparse=True)))
    return Work(work_id, f"generated:{style}", [s for s in stems if s.notes])


# --- music21 corpus ------------------------------------------------------------------------------


def corpus_paths(limit: int | None = None) -> list[str]:
    """Bundled corpus works with several parts (Bach chorales first: short and reliably parsed)."""
    from music21 import corpus

    paths = [str(p) for p in corpus.getComposer("bach")]
    for composer in ("monteverdi", "haydn", "mozart", "beethoven", "palestrina"):
        paths += [str(p) for p in corpus.getComposer(composer)]
    return paths[:limit] if limit else paths


def corpus_work(
    path: str, work_id: str, taxonomy: Taxonomy, rng: random.Random, max_seconds: float = 60.0
) -> Work | None:
    """Each part of a score becomes one stem, with a class whose range fits the part's notes."""
    from music21 import converter

    try:
        score = converter.parse(path)
    except Exception:  # music21 raises many exception types on odd files; such works are skipped
        return None
    parts = list(score.parts)
    if len(parts) < 2:
        return None
    bpm = rng.uniform(60, 110)  # a tempo per rendering: scores' own marks are mostly absent
    beat = 60.0 / bpm
    shift = rng.randint(-3, 3)  # transposition per work; classes are then chosen to fit the ranges
    used: set[str] = set()
    stems: list[Stem] = []
    for part in parts:
        notes: list[Note] = []
        for n in part.flatten().notes:
            start = float(n.offset) * beat
            if start >= max_seconds:
                break
            for p in n.pitches:
                notes.append(
                    Note(start, max(0.05, float(n.quarterLength) * beat * 0.95), p.midi + shift, rng.randint(70, 105))
                )
        if not notes:
            continue
        pitches = sorted(n.pitch for n in notes)
        lo, hi = pitches[len(pitches) // 10], pitches[-1 - len(pitches) // 10]
        options = [
            c
            for c in taxonomy.classes
            if not c.is_drums and not c.recorded_only and c.name not in used and c.low <= lo and hi <= c.high
        ]
        if not options:
            continue
        inst = rng.choice(options)
        used.add(inst.name)
        stems.append(Stem(inst.name, "line", notes))
    if len(stems) < 2:
        return None
    return Work(work_id, f"music21:{path.split('corpus/')[-1]}", stems)
