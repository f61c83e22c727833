"""Languages by code and by name: Whisper's table (what transcribe can hear), the ISO 639-2/3
codes and other names people use, shared by transcribe and speak."""

from __future__ import annotations

LANGUAGES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
    "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
    "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
    "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
    "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
    "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian",
    "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak",
    "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali", "sr": "serbian",
    "az": "azerbaijani", "sl": "slovenian", "kn": "kannada", "et": "estonian", "mk": "macedonian",
    "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian", "ne": "nepali",
    "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer",
    "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan",
    "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi", "gu": "gujarati",
    "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek", "fo": "faroese",
    "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk", "mt": "maltese",
    "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala",
    "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}  # fmt: skip
"""Whisper's languages: code -> English name (the table of openai-whisper's tokenizer)."""

ALIASES = {
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb",
    "pushto": "ps", "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si",
    "castilian": "es", "mandarin": "zh", "farsi": "fa", "jv": "jw", "iw": "he", "nb": "no",
    "bokmal": "no", "eng": "en", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr",
    "spa": "es", "ita": "it", "por": "pt", "rus": "ru", "jpn": "ja", "zho": "zh", "chi": "zh",
    "kor": "ko", "nld": "nl", "dut": "nl", "ara": "ar", "hin": "hi", "tur": "tr", "pol": "pl",
    "swe": "sv", "rum": "ro", "cze": "cs", "gre": "el", "nob": "no", "cmn": "zh", "ice": "is",
    "wel": "cy", "per": "fa", "deutsch": "de", "français": "fr", "español": "es", "italiano": "it",
}  # fmt: skip
"""Other names and codes (ISO 639-2, older codes, endonyms) people use for those languages."""

ISO3 = {
    "en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "nl": "nld",
    "pl": "pol", "ru": "rus", "uk": "ukr", "cs": "ces", "sk": "slk", "hu": "hun", "ro": "ron",
    "el": "ell", "tr": "tur", "sv": "swe", "da": "dan", "no": "nor", "fi": "fin", "is": "isl",
    "ca": "cat", "cy": "cym", "zh": "zho", "ja": "jpn", "ko": "kor", "ar": "ara", "fa": "fas",
    "he": "heb", "hi": "hin", "vi": "vie", "id": "ind", "sw": "swa", "ka": "kat", "kk": "kaz",
    "ne": "nep", "sr": "srp", "lb": "ltz", "lv": "lav", "sl": "slv", "bg": "bul", "hr": "hrv",
    "lt": "lit", "et": "est", "th": "tha", "bn": "ben", "ta": "tam", "ur": "urd", "ms": "msa",
}  # fmt: skip
"""ISO 639-3 codes (as MMS-TTS model names use them) of the languages voices are common for."""

_BY_NAME = {name: code for code, name in LANGUAGES.items()}
_BY_ISO3 = {iso3: code for code, iso3 in ISO3.items()}


def lookup(value: str) -> str | None:
    """The two-letter (Whisper) code of a language given as a code ('de', 'de-AT', 'de_DE',
    'deu') or a name ('German', 'Deutsch', 'Mandarin'); None when it is not known."""
    key = " ".join(value.strip().lower().replace("_", "-").split())
    for candidate in (key, key.split("-")[0]):
        code = candidate if candidate in LANGUAGES else None
        code = code or _BY_NAME.get(candidate) or ALIASES.get(candidate)
        code = code or _BY_ISO3.get(candidate)
        if code:
            return code
    return None


def name(code: str | None) -> str:
    """'German' for 'de'; the code itself when it is not in the table."""
    if code is None:
        return "an unknown language"
    return LANGUAGES[code].title() if code in LANGUAGES else code
