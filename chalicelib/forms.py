"""Multipart form bodies: fields and files, parsed from bytes or streamed in pieces.

Used by the API (a task created with its images) and by the ingest of upload
bodies that API Gateway stored in S3, which reads them in pieces rather than
holding them twice. Files stay in memory up to MAX_MEMORY_FILE_BYTES (API Gateway
never passes a larger body) and spill to a temporary file beyond it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Iterable

from .errors import InvalidInput

MAX_FIELDS = 10_000
MAX_FIELD_BYTES = 1024 * 1024
MAX_MEMORY_FILE_BYTES = 16 * 1024 * 1024
PARSE_ERROR = {"detail": "Multipart form parse error."}
NOT_UTF8 = {"detail": "Form fields must be UTF-8."}


@dataclass
class UploadedFile:
    field: str
    filename: str
    stream: BinaryIO
    size: int


@dataclass
class Form:
    pairs: list[tuple[str, str]] = field(default_factory=list)
    files: list[UploadedFile] = field(default_factory=list)

    @property
    def fields(self) -> dict[str, str]:
        """Single-valued fields (the last value wins, as in Django)."""
        return dict(self.pairs)


def is_multipart(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "multipart/form-data"


def parse_multipart(content_type: str, pieces: bytes | Iterable[bytes]) -> Form:
    """Parse a multipart/form-data body given whole or as an iterable of pieces.

    Raises InvalidInput for a malformed body or non-UTF-8 field values.
    """
    from python_multipart.multipart import create_form_parser

    form = Form()

    def on_field(item) -> None:
        try:
            name = (item.field_name or b"").decode("utf-8")
            value = (item.value or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(NOT_UTF8) from None
        form.pairs.append((name, value))

    def on_file(item) -> None:
        stream = item.file_object
        stream.seek(0)
        form.files.append(UploadedFile(
            field=(item.field_name or b"").decode("utf-8", "replace"),
            filename=(item.file_name or b"").decode("utf-8", "replace"),
            stream=stream, size=item.size))

    config = {"MAX_FIELDS": MAX_FIELDS, "MAX_FIELD_SIZE": MAX_FIELD_BYTES,
              "MAX_MEMORY_FILE_SIZE": MAX_MEMORY_FILE_BYTES}
    try:
        parser = create_form_parser({"Content-Type": content_type.encode("latin-1")},
                                    on_field, on_file, config=config)
        for piece in ([pieces] if isinstance(pieces, (bytes, bytearray)) else pieces):
            parser.write(piece)
        parser.finalize()
    except InvalidInput:
        raise
    except Exception:
        raise InvalidInput(PARSE_ERROR) from None
    return form
