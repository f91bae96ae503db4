import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";

/** A decoded request lacks a field Mesos' proto2 schema marks `required`. */
export class RequiredFieldMissing extends Error {}

/**
 * The first `required` field that is not set, as a path of proto field names
 * (`container_config.resources[0].type`), or undefined when every one is set.
 *
 * protobuf-es decodes proto2 leniently: a required field that is absent, or a closed enum's value
 * it does not know (kept as an unknown field), simply reads as its default. Mesos itself would
 * refuse such a message at parse time, and Berth could not write it back either (a checkpoint's
 * encoding fails on the unset field), so the edge refuses it before the domain sees it.
 */
export function missingRequired(message: ReflectMessage, prefix = ""): string | undefined {
  for (const field of message.fields) {
    const name = prefix === "" ? field.name : `${prefix}.${field.name}`;
    if (!message.isSet(field)) {
      if (field.fieldKind !== "list" && field.fieldKind !== "map" && field.presence === FeatureSet_FieldPresence.LEGACY_REQUIRED) return name;
      continue;
    }
    if (field.fieldKind === "message") {
      const found = missingRequired(message.get(field), name);
      if (found) return found;
    } else if (field.fieldKind === "list" && field.listKind === "message") {
      let i = 0;
      for (const item of message.get(field)) {
        const found = missingRequired(item as ReflectMessage, `${name}[${i++}]`);
        if (found) return found;
      }
    } else if (field.fieldKind === "map" && field.mapKind === "message") {
      for (const [key, value] of message.get(field)) {
        const found = missingRequired(value as ReflectMessage, `${name}[${JSON.stringify(key)}]`);
        if (found) return found;
      }
    }
  }
  return undefined;
}

/** Throws RequiredFieldMissing naming the field (and why it may read as unset) when one is missing. */
export function assertRequiredFields<D extends DescMessage>(schema: D, message: MessageShape<D>): void {
  const missing = missingRequired(reflect(schema, message));
  if (missing !== undefined) {
    throw new RequiredFieldMissing(`required field ${missing} is not set (or is an enum value this schema does not know)`);
  }
}
