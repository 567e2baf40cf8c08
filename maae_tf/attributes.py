"""CelebA's 40 attribute names (in the order of `list_attr_celeba.txt`) and snake_case aliases.

`resolve("mouth_open")` -> "Mouth_Slightly_Open"; every official name also resolves from its own
lower-case form (`blond_hair` -> "Blond_Hair"). An unknown name raises a ValueError that lists the
valid ones.
"""

from __future__ import annotations

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

# Short names users type, beyond the lower-case form of every official name.
_EXTRA_ALIASES = {
    "mouth_open": "Mouth_Slightly_Open",
    "five_o_clock_shadow": "5_o_Clock_Shadow",
    "glasses": "Eyeglasses",
    "pale": "Pale_Skin",
    "blond": "Blond_Hair",
    "blonde_hair": "Blond_Hair",
    "black": "Black_Hair",
    "brown": "Brown_Hair",
    "gray": "Gray_Hair",
    "grey_hair": "Gray_Hair",
    "smile": "Smiling",
    "hat": "Wearing_Hat",
    "lipstick": "Wearing_Lipstick",
}

ALIASES: dict[str, str] = {name.lower(): name for name in CELEBA_ATTRIBUTES}
ALIASES.update(_EXTRA_ALIASES)


def resolve(name: str) -> str:
    """Returns the official CelebA name for `name` (official name or alias, any case)."""
    if name in CELEBA_ATTRIBUTES:
        return name
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in ALIASES:
        return ALIASES[key]
    valid = ", ".join(sorted(set(ALIASES)))
    raise ValueError(f"unknown attribute {name!r}; valid names (any case): {valid}")


def index(name: str) -> int:
    """Column of `name` (resolved) in `list_attr_celeba.txt`."""
    return CELEBA_ATTRIBUTES.index(resolve(name))


def snake(name: str) -> str:
    """The snake_case form of an official name: "Mouth_Slightly_Open" -> "mouth_slightly_open"."""
    return resolve(name).lower()
