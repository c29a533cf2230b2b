"""Load the onboarding paths from the seeds' facts and give every existing integration its
checklist (one already receiving data has its final step done, without an email)."""

from django.db import migrations

from clinics.onboarding_paths import onboarding_paths_install


def load_paths_and_checklists(apps, schema_editor):
    using = schema_editor.connection.alias
    onboarding_paths_install(apps, using=using)
    Integration = apps.get_model("clinics", "Integration")
    OnboardingPath = apps.get_model("clinics", "OnboardingPath")
    OnboardingChecklist = apps.get_model("clinics", "OnboardingChecklist")
    OnboardingStep = apps.get_model("clinics", "OnboardingStep")
    paths = {path.connector: path for path in OnboardingPath.objects.using(using)}
    for integration in Integration.objects.using(using).filter(checklist__isnull=True):
        path = paths.get(integration.connector)
        if path is None:
            continue
        checklist = OnboardingChecklist.objects.using(using).create(
            integration=integration, path=path
        )
        OnboardingStep.objects.using(using).bulk_create(
            OnboardingStep(checklist=checklist, template=template)
            for template in path.steps.all()
        )
        if integration.last_successful_sync_at is not None:
            # Already receiving data: the next sync must not announce it as new.
            checklist.receiving_data_since = integration.last_successful_sync_at
            checklist.save(update_fields=["receiving_data_since"])
            OnboardingStep.objects.using(using).filter(
                checklist=checklist, template__completes_on="first_data"
            ).update(
                done_at=integration.last_successful_sync_at,
                done_by_label="migration",
                notes="Receiving data before onboarding checklists existed; no email sent.",
            )


def unload(apps, schema_editor):
    using = schema_editor.connection.alias
    apps.get_model("clinics", "OnboardingChecklist").objects.using(using).all().delete()
    Template = apps.get_model("clinics", "OnboardingStepTemplate")
    # Dependents first: depends_on protects the step it points at.
    Template.objects.using(using).filter(depends_on__isnull=False).delete()
    Template.objects.using(using).all().delete()
    apps.get_model("clinics", "OnboardingPath").objects.using(using).all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("clinics", "0003_onboarding_checklists"),
    ]

    operations = [
        migrations.RunPython(load_paths_and_checklists, unload),
    ]
