"""Inline images of a new email: editor URLs of uploads become cid: references."""

from postroom.services.new_email import inline_content_id, link_inline_images


def test_upload_urls_and_cid_upload_names_become_content_ids() -> None:
    cids = {7: "upload-7.ab@example.com", 9: "upload-9.cd@example.com"}
    html = (
        '<p><img src="/api/v1/uploads/7"> <img alt="x" src="https://pr.example/api/v1/uploads/9">'
        " <img src='cid:upload-7'> <img src=\"/api/v1/uploads/70\"></p>"
    )
    out = link_inline_images(html, cids)
    assert out.count('src="cid:upload-7.ab@example.com"') == 1
    assert 'src="cid:upload-9.cd@example.com"' in out
    assert "src='cid:upload-7.ab@example.com'" in out
    assert 'src="/api/v1/uploads/70"' in out  # not one of the inline uploads: left alone


def test_content_ids_are_unique_per_message() -> None:
    assert inline_content_id(7, "u1", "example.com") == "upload-7.u1@example.com"
    assert inline_content_id(7, "u1", "example.com") != inline_content_id(7, "u2", "example.com")
