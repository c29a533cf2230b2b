"""The site's resources: the scopes, each resource's fields, and the scope each one needs."""

from __future__ import annotations

READ_SCOPES = (
    "read-contact",
    "read-contactdetail",
    "read-contactdetailtype",
    "read-address",
    "read-animal",
    "read-species",
    "read-breed",
    "read-sex",
    "read-user",
    "read-consult",
)
WRITE_SCOPES = ("write-externalprescription",)
ALL_SCOPES = READ_SCOPES + WRITE_SCOPES
COMMON_FIELDS = ("id", "active", "created_at", "modified_at")
FIELDS: dict[str, tuple[str, ...]] = {
    "contact": (
        "code",
        "first_name",
        "last_name",
        "business_name",
        "is_business",
        "is_customer",
        "is_supplier",
        "is_vet",
        "is_staff_member",
        "contact_detail_list",
        "address_physical",
        "address_postal",
    ),
    "address": (
        "street_1",
        "street_2",
        "suburb",
        "city",
        "region",
        "post_code",
        "state",
        "country_id",
    ),
    "contactdetail": ("contact_id", "name", "value", "contact_detail_type_id", "preferred"),
    "contactdetailtype": ("name",),
    "animal": (
        "name",
        "contact_id",
        "species_id",
        "breed_id",
        "sex_id",
        "date_of_birth",
        "is_estimated_date_of_birth",
        "weight",
        "weight_unit",
        "is_dead",
        "date_of_death",
        "microchip_number",
    ),
    "species": ("name",),
    "breed": ("name", "species_id"),
    "sex": ("name",),
    "user": ("title", "first_name", "last_name", "email", "contact_id"),
    "consult": ("animal_id", "vet_id", "date", "description"),  # description: [inferred]
    "externalprescription": (
        "partner_id",
        "animal_id",
        "contact_id",
        "prescribing_vet_user_id",
        "consult_id",
        "date_of_prescription",
        "external_reference",
        "total_price",
        "external_prescription_item_list",
    ),
}
LIST_FIELDS = frozenset({"contact_detail_list", "external_prescription_item_list"})
SCOPE_FOR = {name: f"read-{name}" for name in FIELDS} | {
    "externalprescription": "write-externalprescription"
}
