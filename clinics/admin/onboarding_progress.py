"""How far a checklist is: the progress column and the list filter that the integration
and the checklist lists share."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from clinics.models import OnboardingChecklist, OnboardingStep
from vetsync.lib.subqueries import count_of


def with_onboarding_progress(queryset: QuerySet[Any], checklist: str) -> QuerySet[Any]:
    """Annotate step counts (total, done, overdue now) for the progress column; ``checklist``
    names the row's checklist id ("pk", "checklist__id"). Subqueries, so only the rows shown
    are counted (a join and GROUP BY counted every checklist's steps for each page)."""
    steps = OnboardingStep.objects.filter(checklist=OuterRef(checklist))
    return queryset.annotate(
        onboarding_total=count_of(steps),
        onboarding_done=count_of(steps.filter(done_at__isnull=False)),
        onboarding_overdue=count_of(steps.overdue()),
    )


def onboarding_progress_text(*, total: int, done: int, overdue: int) -> str:
    if total and done == total:
        return f"{done}/{total} complete"
    return f"{done}/{total}" + (f", {overdue} overdue" if overdue else "")


def onboarding_progress_link(
    checklist: OnboardingChecklist, *, total: int, done: int, overdue: int, label: str = ""
) -> SafeString:
    url = reverse("admin:clinics_onboardingchecklist_change", args=[checklist.pk])
    text = label + onboarding_progress_text(total=total, done=done, overdue=overdue)
    if overdue:
        return format_html(
            '<a href="{}" data-testid="onboarding-progress" class="onboarding-overdue">'
            '<img src="{}" alt="Overdue"> {}</a>',
            url,
            static("admin/img/icon-alert.svg"),
            text,
        )
    return format_html('<a href="{}" data-testid="onboarding-progress">{}</a>', url, text)


def onboarding_state_filter(checklist_lookup: str) -> type[admin.SimpleListFilter]:
    """A list filter by onboarding state; ``checklist_lookup`` leads from a step to the row."""

    class OnboardingStateFilter(admin.SimpleListFilter):
        title = "onboarding"
        parameter_name = "onboarding"

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return [
                ("overdue", "Has an overdue step"),
                ("open", "In progress"),
                ("complete", "Complete"),
            ]

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            steps = OnboardingStep.objects.filter(**{checklist_lookup: OuterRef("pk")})
            if self.value() == "overdue":
                return queryset.filter(Exists(steps.overdue()))
            if self.value() == "open":
                return queryset.filter(Exists(steps.filter(done_at__isnull=True)))
            if self.value() == "complete":
                return queryset.filter(Exists(steps)).exclude(
                    Exists(steps.filter(done_at__isnull=True))
                )
            return queryset

    return OnboardingStateFilter
