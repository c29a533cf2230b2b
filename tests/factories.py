"""factory-boy factories for the test world."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from clinics.models import Clinic, Connector, Integration, Membership, Role, Vet
from records.models import Client, Patient


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("pw-for-tests-only")


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clinic
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Clinic {n}")
    slug = factory.Sequence(lambda n: f"clinic-{n}")
    city = "Portland"
    state = "OR"


class IntegrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Integration

    clinic = factory.SubFactory(ClinicFactory)
    connector = Connector.SYNCVET
    status = Integration.Status.LIVE


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    clinic = factory.SubFactory(ClinicFactory)
    role = Role.STAFF


class VetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vet

    clinic = factory.SubFactory(ClinicFactory)
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    licence_number = factory.Sequence(lambda n: f"LIC-{n:05d}")
    pims_user_id = factory.Sequence(lambda n: str(100 + n))


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    clinic = factory.SubFactory(ClinicFactory)
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda c: f"{c.first_name}.{c.last_name}@example.org".lower())
    phone = "+1 503 555 0100"
    address_line1 = factory.Faker("street_address")
    city = "Portland"
    state = "OR"
    postcode = "97205"


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    client = factory.SubFactory(ClientFactory)
    clinic = factory.LazyAttribute(lambda p: p.client.clinic)
    name = factory.Iterator(["Biscuit", "Luna", "Max", "Bella"])
    species = "Canine"
    breed = "Beagle"
    sex = "Female spayed"
    weight = "11.40"
