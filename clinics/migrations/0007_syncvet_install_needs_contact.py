"""SyncVet installs with the clinic's technical contact: its "agent installed" step cannot be
ticked before the checklist names one (existing paths are never overwritten by the loader,
so the flag is set here)."""

from django.db import migrations


def require_contact(apps, schema_editor):
    Template = apps.get_model("clinics", "OnboardingStepTemplate")
    Template.objects.using(schema_editor.connection.alias).filter(
        path__connector="syncvet", key="agent-installed"
    ).update(
        requires_technical_contact=True,
        help_text="SyncVet installs with the technical contact: record the contact first.",
    )


def release_contact(apps, schema_editor):
    Template = apps.get_model("clinics", "OnboardingStepTemplate")
    Template.objects.using(schema_editor.connection.alias).filter(
        path__connector="syncvet", key="agent-installed"
    ).update(requires_technical_contact=False, help_text="")


class Migration(migrations.Migration):
    dependencies = [
        ("clinics", "0006_integration_failing_since"),
    ]

    operations = [
        migrations.RunPython(require_contact, release_contact),
    ]
