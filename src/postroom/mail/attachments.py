"""Attachment helpers: safe file names and content sniffing.

This module turns whatever a sender put in a ``filename``/``name`` parameter into a
name that is safe to show, to store and to offer as a download, and recognizes a
file type from its leading bytes. It must not touch the file system, the network
or any global registry that reads files (so no ``mimetypes.init()``): the
extension table below is deliberately small and fixed.
"""

from __future__ import annotations

import unicodedata

import filetype

# Declared content type -> extension used for fallback names. Kept small on purpose:
# `mimetypes` would read /etc/mime.types (I/O, and machine-dependent results).
_EXTENSIONS: dict[str, str] = {
    "application/pdf": "pdf",
    "application/zip": "zip",
    "application/gzip": "gz",
    "application/json": "json",
    "application/xml": "xml",
    "application/msword": "doc",
    "application/vnd.ms-excel": "xls",
    "application/vnd.ms-powerpoint": "ppt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/ms-tnef": "dat",
    "application/vnd.ms-tnef": "dat",
    "application/pgp-signature": "asc",
    "application/pkcs7-signature": "p7s",
    "application/x-pkcs7-signature": "p7s",
    "application/octet-stream": "bin",
    "message/rfc822": "eml",
    "message/global": "eml",
    "message/delivery-status": "txt",
    "text/plain": "txt",
    "text/html": "html",
    "text/csv": "csv",
    "text/calendar": "ics",
    "text/enriched": "txt",
    "text/rfc822-headers": "txt",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/tiff": "tif",
    "image/svg+xml": "svg",
    "audio/mpeg": "mp3",
    "audio/basic": "au",
    "video/mp4": "mp4",
}
_TYPES_BY_EXTENSION: dict[str, str] = {}
for _ctype, _ext in _EXTENSIONS.items():
    _TYPES_BY_EXTENSION.setdefault(_ext, _ctype)
_TYPES_BY_EXTENSION["jpeg"] = "image/jpeg"
_TYPES_BY_EXTENSION["htm"] = "text/html"

# Windows device names: a file called "CON.txt" cannot be created there.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "clock$"}
    | {f"com{i}" for i in range(10)}
    | {f"lpt{i}" for i in range(10)}
)
# Characters Windows forbids in names; '/' and '\\' are handled as path separators first.
_FORBIDDEN = frozenset('<>:"|?*')
_MAX_CHARS = 120
_MAX_EXT = 16


def extension_for(content_type: str) -> str:
    """File extension (without dot) for a declared content type; "bin" when unknown."""
    ctype = content_type.lower()
    if ctype in _EXTENSIONS:
        return _EXTENSIONS[ctype]
    if ctype.startswith("text/"):
        return "txt"
    return "bin"


def type_for_filename(filename: str) -> str:
    """Content type guessed from a file name's extension; application/octet-stream if unknown."""
    _, dot, ext = filename.rpartition(".")
    if not dot:
        return "application/octet-stream"
    return _TYPES_BY_EXTENSION.get(ext.lower(), "application/octet-stream")


def _clean_char(ch: str) -> str:
    if ch in _FORBIDDEN:
        return "_"
    if ch in "\t\r\n":
        return " "  # folded or tab-separated names: keep the word break
    # Cc: control characters (NUL, CR, LF, ESC...). Cf: format characters such as
    # U+202E RIGHT-TO-LEFT OVERRIDE, used to disguise "gpj.exe" as "exe.jpg".
    # Zl/Zp: line/paragraph separators that break headers and logs.
    if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
        return ""
    if ch.isspace():
        return " "
    return ch


def safe_filename(name: str | None, content_type: str, index: int) -> str:
    """A file name safe to display and to use on any file system.

    Strips path parts (both ``/`` and ``\\``, drive letters), control and format
    characters, leading dots (hidden files) and trailing dots/spaces (invalid on
    Windows); prefixes Windows device names; caps the length while keeping the
    extension. Never returns an empty string: falls back to
    ``attachment-{index}.{ext}`` with the extension taken from ``content_type``.
    """
    candidate = unicodedata.normalize("NFC", name or "")
    # Keep only the last path component, whatever the sender's OS convention.
    candidate = candidate.replace("\\", "/").rsplit("/", 1)[-1]
    # Drive-relative names such as "C:evil.exe" (the ':' would become '_' below).
    if len(candidate) >= 2 and candidate[1] == ":" and candidate[0].isascii():
        candidate = candidate[2:]
    candidate = "".join(_clean_char(ch) for ch in candidate)
    candidate = " ".join(candidate.split())
    candidate = candidate.lstrip(". ").rstrip(". ")
    if candidate:
        stem, dot, ext = candidate.rpartition(".")
        if not dot:
            stem, ext = candidate, ""
        if stem.lower() in _RESERVED or candidate.split(".", 1)[0].lower() in _RESERVED:
            candidate = "_" + candidate
            stem = "_" + stem
        if len(candidate) > _MAX_CHARS:
            if ext and len(ext) <= _MAX_EXT and stem:
                candidate = stem[: _MAX_CHARS - len(ext) - 1].rstrip(". ") + "." + ext
            else:
                candidate = candidate[:_MAX_CHARS].rstrip(". ")
    if not candidate or candidate.strip("_") == "":
        candidate = f"attachment-{index}.{extension_for(content_type)}"
    return candidate


def sniff_type(data: bytes) -> str | None:
    """MIME type recognized from the leading bytes (``filetype``), or None."""
    if not data:
        return None
    try:
        kind = filetype.guess(data[:8192])
    except Exception:  # filetype's matchers index into the buffer; never let that escape
        return None
    if kind is None:
        return None
    return str(kind.mime)
