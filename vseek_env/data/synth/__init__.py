"""Procedural synthetic videos with exact ground truth (see :mod:`vseek_env.data.synthetic`).

* :mod:`.palette` — the colours, shapes and textures of the generator (public knowledge: a
  hand-written detector such as the ``pixel`` policy may use it).
* :mod:`.scene` — scene layout, motions, transient events, per-frame rendering and masks, MP4 output.
* :mod:`.questions` — question templates over the V2P dimensions, sample assembly.
"""
