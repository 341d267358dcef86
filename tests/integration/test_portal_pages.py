"""Portal pages render what administrators need to see."""

from __future__ import annotations

from ledgerlink.identity.roles import Role
from tests.support.web import make_user, sign_in


def test_the_settings_page_lists_users_for_an_administrator(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    make_user(db, Role.VIEWER, "auditor@example.org")
    sign_in(client, admin.email)
    page = client.get("/settings")
    assert page.status_code == 200
    assert "auditor@example.org" in page.text


def test_adding_a_connection_from_the_portal_opens_its_page(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    token = sign_in(client, admin.email)
    response = client.post(
        "/connections",
        data={"kind": "paytrace", "name": "PayTrace live", "csrftoken": token},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "PayTrace live" in response.text
    assert "Integrator id" in response.text
    assert "Webhook secret" in response.text  # for signed push events
    assert "/silent-post" in response.text  # where PayTrace's silent posts go


def test_a_bad_setting_is_named_on_the_connection_page(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    token = sign_in(client, admin.email)
    created = client.post(
        "/connections",
        data={"kind": "sage500", "name": "ERP", "csrftoken": token},
        follow_redirects=False,
    )
    page = created.headers["location"].split("?")[0]
    response = client.post(
        page, data={"mode": "sql", "company_id": "TOOLONG", "currency": "USD", "csrftoken": token}
    )
    assert response.status_code == 422
    assert 'id="company_id-error"' in response.text  # named beside the field
    assert 'value="TOOLONG"' in response.text  # what was typed stays


def test_connection_settings_export_as_yaml_without_secrets(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    headers = {"Authorization": f"Bearer {admin.token}"}
    client.post(
        "/api/v1/connections",
        headers=headers,
        json={
            "kind": "paytrace",
            "name": "PT",
            "settings": {"username": "u", "integrator_id": "i"},
            "secrets": {"password": "never-exported-pw"},
        },
    )
    sign_in(client, admin.email)
    exported = client.get("/connections/export.yaml")
    assert exported.status_code == 200
    assert "integrator_id: i" in exported.text
    assert "never-exported-pw" not in exported.text


def test_importing_settings_with_a_bad_value_names_the_line_and_changes_nothing(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    token = sign_in(client, admin.email)
    document = (
        "connections:\n"
        "- name: ERP\n"
        "  kind: sage500\n"
        "  settings:\n"
        "    mode: sql\n"
        "    currency: dollars\n"
        "- name: Cards\n"
        "  kind: paytrace\n"
        "  settings: {username: u, integrator_id: i}\n"
    )
    response = client.post(
        "/connections/import",
        data={"csrftoken": token},
        files={"file": ("conf.yaml", document.encode(), "application/yaml")},
    )
    assert response.status_code == 422
    assert "line 6" in response.text
    assert "settings.currency" in response.text
    assert "Cards" not in client.get("/connections").text  # nothing half-imported
    good = document.replace("dollars", "USD")
    response = client.post(
        "/connections/import",
        data={"csrftoken": token},
        files={"file": ("conf.yaml", good.encode(), "application/yaml")},
    )
    assert response.status_code == 200
    assert "2 created" in response.text


def test_a_file_upload_form_without_its_csrf_token_is_refused(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    sign_in(client, admin.email)
    response = client.post(
        "/connections/import",
        data={"csrftoken": "forged"},
        files={"file": ("conf.yaml", b"connections: []\n", "application/yaml")},
    )
    assert response.status_code == 403
    response = client.post(
        "/connections/import", files={"file": ("conf.yaml", b"connections: []\n", "text/yaml")}
    )
    assert response.status_code == 403
