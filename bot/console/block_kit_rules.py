"""Block Kit as Slack checks it: its documented limits, in its error-message style.

``validate_blocks`` / ``validate_view`` return the strings Slack puts in an
``invalid_blocks`` / ``invalid_arguments`` answer (``… [json-pointer:/blocks/0/text]``);
an empty list means Slack would take the blocks. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100


def _ptr_len(errors: list[str], value: Any, limit: int, ptr: str) -> None:
    if isinstance(value, str) and len(value) > limit:
        errors.append(f"must be less than {limit + 1} characters [json-pointer:{ptr}]")


def _check_text(
    errors: list[str],
    obj: Any,
    ptr: str,
    limit: int,
    *,
    plain_only: bool = False,
    required: bool = True,
) -> None:
    if obj is None:
        if required:
            errors.append(f"missing required field: {ptr.rsplit('/', 1)[-1]} [json-pointer:{ptr}]")
        return
    if not isinstance(obj, dict):
        errors.append(f"expected object [json-pointer:{ptr}]")
        return
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        errors.append(f"must be a valid enum value [json-pointer:{ptr}/type]")
    text = obj.get("text")
    if not isinstance(text, str):
        errors.append(f"missing required field: text [json-pointer:{ptr}/text]")
    elif not text:
        errors.append(f"must be more than 0 characters [json-pointer:{ptr}/text]")
    else:
        _ptr_len(errors, text, limit, f"{ptr}/text")


def _check_confirm(errors: list[str], confirm: Any, ptr: str) -> None:
    if not isinstance(confirm, dict):
        errors.append(f"expected object [json-pointer:{ptr}]")
        return
    _check_text(errors, confirm.get("title"), f"{ptr}/title", 100, plain_only=True)
    _check_text(errors, confirm.get("text"), f"{ptr}/text", 300)
    _check_text(errors, confirm.get("confirm"), f"{ptr}/confirm", 30, plain_only=True)
    _check_text(errors, confirm.get("deny"), f"{ptr}/deny", 30, plain_only=True)


def _check_options(errors: list[str], options: Any, ptr: str, max_items: int) -> None:
    if not isinstance(options, list):
        errors.append(f"expected array [json-pointer:{ptr}]")
        return
    if len(options) > max_items:
        errors.append(f"no more than {max_items} items allowed [json-pointer:{ptr}]")
    for i, option in enumerate(options):
        p = f"{ptr}/{i}"
        if not isinstance(option, dict):
            errors.append(f"expected object [json-pointer:{p}]")
            continue
        _check_text(errors, option.get("text"), f"{p}/text", 75)
        _ptr_len(errors, option.get("value"), 150, f"{p}/value")
        if option.get("description") is not None:
            _check_text(errors, option.get("description"), f"{p}/description", 75)


def _check_element(errors: list[str], element: Any, ptr: str) -> None:
    if not isinstance(element, dict):
        errors.append(f"expected object [json-pointer:{ptr}]")
        return
    etype = element.get("type")
    if not isinstance(etype, str):
        errors.append(f"missing required field: type [json-pointer:{ptr}]")
        return
    _ptr_len(errors, element.get("action_id"), 255, f"{ptr}/action_id")
    if element.get("confirm") is not None:
        _check_confirm(errors, element["confirm"], f"{ptr}/confirm")
    if etype == "button":
        _check_text(errors, element.get("text"), f"{ptr}/text", 75, plain_only=True)
        _ptr_len(errors, element.get("value"), 2000, f"{ptr}/value")
        _ptr_len(errors, element.get("url"), 3000, f"{ptr}/url")
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"must be a valid enum value [json-pointer:{ptr}/style]")
    elif etype.endswith("_select"):
        if element.get("placeholder") is not None:
            _check_text(errors, element["placeholder"], f"{ptr}/placeholder", 150, plain_only=True)
        if element.get("options") is not None:
            _check_options(errors, element["options"], f"{ptr}/options", 100)
    elif etype == "overflow":
        _check_options(errors, element.get("options"), f"{ptr}/options", 5)
    elif etype in ("checkboxes", "radio_buttons"):
        _check_options(errors, element.get("options"), f"{ptr}/options", 10)
    elif etype == "plain_text_input":
        if element.get("placeholder") is not None:
            _check_text(errors, element["placeholder"], f"{ptr}/placeholder", 150, plain_only=True)
    elif etype == "image":
        _ptr_len(errors, element.get("image_url"), 3000, f"{ptr}/image_url")
        if not element.get("alt_text"):
            errors.append(f"missing required field: alt_text [json-pointer:{ptr}]")
        _ptr_len(errors, element.get("alt_text"), 2000, f"{ptr}/alt_text")


def _check_section(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    text, fields = block.get("text"), block.get("fields")
    if text is None and not fields:
        errors.append(f"must provide either text or fields [json-pointer:{ptr}]")
    if text is not None:
        _check_text(errors, text, f"{ptr}/text", 3000)
    if fields is not None:
        if not isinstance(fields, list):
            errors.append(f"expected array [json-pointer:{ptr}/fields]")
        else:
            if len(fields) > 10:
                errors.append(f"no more than 10 items allowed [json-pointer:{ptr}/fields]")
            for i, f in enumerate(fields):
                _check_text(errors, f, f"{ptr}/fields/{i}", 2000)
    if block.get("accessory") is not None:
        _check_element(errors, block["accessory"], f"{ptr}/accessory")


def _check_header(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _check_text(errors, block.get("text"), f"{ptr}/text", 150, plain_only=True)


def _check_elements(
    block: dict[str, Any], ptr: str, errors: list[str], max_items: int, *, context: bool
) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        errors.append(f"must provide at least 1 element [json-pointer:{ptr}/elements]")
        return
    if len(elements) > max_items:
        errors.append(f"no more than {max_items} items allowed [json-pointer:{ptr}/elements]")
    for i, element in enumerate(elements):
        p = f"{ptr}/elements/{i}"
        if (
            context
            and isinstance(element, dict)
            and element.get("type") in ("plain_text", "mrkdwn")
        ):
            _check_text(errors, element, p, 3000)
        else:
            _check_element(errors, element, p)


def _check_actions(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _check_elements(block, ptr, errors, 25, context=False)


def _check_context(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _check_elements(block, ptr, errors, 10, context=True)


def _check_image(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    if not block.get("image_url") and not block.get("slack_file"):
        errors.append(f"missing required field: image_url [json-pointer:{ptr}]")
    _ptr_len(errors, block.get("image_url"), 3000, f"{ptr}/image_url")
    if not block.get("alt_text"):
        errors.append(f"missing required field: alt_text [json-pointer:{ptr}]")
    _ptr_len(errors, block.get("alt_text"), 2000, f"{ptr}/alt_text")
    if block.get("title") is not None:
        _check_text(errors, block["title"], f"{ptr}/title", 2000, plain_only=True)


def _check_input(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _check_text(errors, block.get("label"), f"{ptr}/label", 2000, plain_only=True)
    if block.get("hint") is not None:
        _check_text(errors, block["hint"], f"{ptr}/hint", 2000, plain_only=True)
    if block.get("element") is None:
        errors.append(f"missing required field: element [json-pointer:{ptr}]")
    else:
        _check_element(errors, block["element"], f"{ptr}/element")


def _check_markdown(block: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _ptr_len(errors, block.get("text"), 12_000, f"{ptr}/text")


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str, list[str]], None]] = {
    "section": _check_section,
    "header": _check_header,
    "actions": _check_actions,
    "context": _check_context,
    "image": _check_image,
    "input": _check_input,
    "markdown": _check_markdown,
}


def validate_blocks(
    blocks: Sequence[Any], *, max_blocks: int = MAX_MESSAGE_BLOCKS, pointer: str = "/blocks"
) -> list[str]:
    """Slack-style error strings for a list of blocks (empty list = valid)."""
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    seen_block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        ptr = f"{pointer}/{i}"
        if not isinstance(block, dict):
            errors.append(f"expected object [json-pointer:{ptr}]")
            continue
        btype = block.get("type")
        if not isinstance(btype, str):
            errors.append(f"missing required field: type [json-pointer:{ptr}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            _ptr_len(errors, block_id, 255, f"{ptr}/block_id")
            if block_id in seen_block_ids:
                errors.append(f"duplicate block_id {block_id!r} [json-pointer:{ptr}/block_id]")
            seen_block_ids.add(str(block_id))
        check = _BLOCK_CHECKS.get(btype)
        if check is not None:
            check(block, ptr, errors)
    return errors


def validate_view(view: Mapping[str, Any], *, pointer: str = "/view") -> list[str]:
    """Slack-style error strings for a modal/home view (empty list = valid)."""
    errors: list[str] = []
    vtype = view.get("type")
    if vtype not in ("modal", "home"):
        errors.append(f"must be a valid enum value [json-pointer:{pointer}/type]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        errors.append(f"missing required field: blocks [json-pointer:{pointer}]")
        blocks = []
    errors.extend(validate_blocks(blocks, max_blocks=MAX_VIEW_BLOCKS, pointer=f"{pointer}/blocks"))
    if vtype == "modal":
        _check_text(errors, view.get("title"), f"{pointer}/title", 24, plain_only=True)
        for key in ("submit", "close"):
            if view.get(key) is not None:
                _check_text(errors, view[key], f"{pointer}/{key}", 24, plain_only=True)
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if has_input and view.get("submit") is None:
            errors.append(
                f"must provide submit property when using input blocks [json-pointer:{pointer}]"
            )
    _ptr_len(errors, view.get("callback_id"), 255, f"{pointer}/callback_id")
    _ptr_len(errors, view.get("private_metadata"), 3000, f"{pointer}/private_metadata")
    _ptr_len(errors, view.get("external_id"), 255, f"{pointer}/external_id")
    return errors
