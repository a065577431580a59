"""Which language a vocabulary language name means.

A vocabulary names its languages as the user chose (``de``, ``deu``, ``German`` is not
accepted, ``pt-BR``...). The data shipped per language (function-word tables, deny lists)
and wordfreq are keyed by one code: the ISO 639-1 code where the language has one, else the
ISO 639-3 code, as ``langcodes`` standardizes it (``deu`` and ``ger`` -> ``de``).
"""

from __future__ import annotations

import re

__all__ = ["language_code"]

# FreeDict calls Romanian rom (ISO 639-3 for Romani); its dictionary is Romanian.
_ALIASES = {"rom": "ro"}
_TAG = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")


def language_code(lang: str) -> str | None:
    """The base language code of ``lang`` (``deu`` -> ``de``, ``pt-BR`` -> ``pt``), or None when
    ``lang`` is not a language tag at all."""
    if not _TAG.fullmatch(lang):
        return None
    alias = _ALIASES.get(lang.lower())
    if alias is not None:
        return alias
    import langcodes

    try:
        code = langcodes.Language.get(lang.replace("_", "-")).language
    except (langcodes.tag_parser.LanguageTagError, ValueError):
        return None
    return code or None
