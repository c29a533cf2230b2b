"""The demo pharmacy's catalogue: prescription medicines, prescription diets, OTC products
and Wedgewood's compounded medicines."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from prescriptions.models import Product, ProductKind

RX, DIET, OTC = ProductKind.RX_MEDICATION, ProductKind.RX_NUTRITION, ProductKind.OTC


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    kind: str
    price: str
    unit: str = "tablet"
    compounded: bool = False


CATALOGUE = [
    DemoProduct("CARP-75", "Carprofen 75 mg caplets", RX, "0.85", "caplet"),
    DemoProduct("CARP-100C", "Carprofen 100 mg chewable tablets", RX, "1.05"),
    DemoProduct("APOQ-5.4", "Apoquel (oclacitinib) 5.4 mg tablets", RX, "1.95"),
    DemoProduct("APOQ-16", "Apoquel (oclacitinib) 16 mg tablets", RX, "2.40"),
    DemoProduct("GABA-100", "Gabapentin 100 mg capsules", RX, "0.45", "capsule"),
    DemoProduct("GABA-300", "Gabapentin 300 mg capsules", RX, "0.65", "capsule"),
    DemoProduct("BRAV-L", "Bravecto chew for dogs 20-40 kg (12 weeks)", RX, "62.00", "chew"),
    DemoProduct("SIMP-TRIO-M", "Simparica Trio chewables 10.1-20 kg, 3 pack", RX, "78.00", "pack"),
    DemoProduct("THYRO-0.5", "Thyroxine (levothyroxine) 0.5 mg tablets", RX, "0.32"),
    DemoProduct("METHIM-2.5", "Methimazole 2.5 mg tablets", RX, "0.40"),
    DemoProduct("VETM-5", "Vetmedin (pimobendan) 5 mg chewable tablets", RX, "1.85"),
    DemoProduct("PRED-5", "Prednisolone 5 mg tablets", RX, "0.20"),
    DemoProduct("CEREN-24", "Cerenia (maropitant) 24 mg tablets", RX, "5.10"),
    DemoProduct(
        "HILLS-KD-K9",
        "Hill's Prescription Diet k/d Kidney Care canine, 17.6 lb",
        DIET,
        "89.99",
        "bag",
    ),
    DemoProduct(
        "HILLS-CD-FEL",
        "Hill's Prescription Diet c/d Multicare feline, 8.5 lb",
        DIET,
        "54.99",
        "bag",
    ),
    DemoProduct(
        "RC-RENAL-K9",
        "Royal Canin Veterinary Diet Renal Support canine, 17.6 lb",
        DIET,
        "92.99",
        "bag",
    ),
    DemoProduct(
        "RC-GI-LF-K9", "Royal Canin Gastrointestinal Low Fat canine, 13.2 lb", DIET, "79.99", "bag"
    ),
    DemoProduct(
        "PPVD-UR-FEL",
        "Purina Pro Plan Veterinary Diets UR Urinary St/Ox feline, 6 lb",
        DIET,
        "39.99",
        "bag",
    ),
    DemoProduct("DASUQ-MSM-L", "Dasuquin with MSM chewable tablets, large dogs", OTC, "1.10"),
    DemoProduct("DENAM-225", "Denamarin 225 mg tablets", OTC, "1.35"),
    DemoProduct("WELACTIN-8", "Welactin omega-3 fish oil for dogs, 8 oz", OTC, "24.99", "bottle"),
    DemoProduct(
        "FORTIFLORA-K9", "Purina FortiFlora probiotic for dogs, 30 sachets", OTC, "32.99", "box"
    ),
    DemoProduct("COSEQ-FEL", "Cosequin sprinkle capsules for cats", OTC, "0.55", "capsule"),
    DemoProduct(
        "WW-METHIM-TD",
        "Methimazole 5 mg/0.1 mL transdermal gel (Wedgewood)",
        RX,
        "0.95",
        "mL",
        True,
    ),
    DemoProduct(
        "WW-GABA-SUSP",
        "Gabapentin 50 mg/mL oral suspension, fish flavour (Wedgewood)",
        RX,
        "0.60",
        "mL",
        True,
    ),
    DemoProduct(
        "WW-KBR-250",
        "Potassium bromide 250 mg/mL oral solution (Wedgewood)",
        RX,
        "0.35",
        "mL",
        True,
    ),
]


def catalogue_seed() -> dict[str, Product]:
    """The catalogue's products, by SKU; those that exist already are left as they are."""
    products = {}
    for spec in CATALOGUE:
        product, _ = Product.objects.get_or_create(
            sku=spec.sku,
            defaults={
                "name": spec.name,
                "kind": spec.kind,
                "price": Decimal(spec.price),
                "unit": spec.unit,
                "is_compounded": spec.compounded,
            },
        )
        products[spec.sku] = product
    return products
