import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
export declare const protobufPackage = "aitrading.common";
export declare const protobufFileName = "proto/common/user_context.proto";
/**
 * Who a message or request acts for. Mirrors the hub's tenant headers
 * (x-tenant-id, x-user-id, x-subscription-tier, x-company-id, x-correlation-id).
 */
/** Ordered: FREE < PRO < ENTERPRISE. UNSPECIFIED means "not asserted". */
export declare enum SubscriptionTier {
    SUBSCRIPTION_TIER_UNSPECIFIED = 0,
    SUBSCRIPTION_TIER_FREE = 1,
    SUBSCRIPTION_TIER_PRO = 2,
    SUBSCRIPTION_TIER_ENTERPRISE = 3,
    UNRECOGNIZED = -1
}
export declare function subscriptionTierFromJSON(object: any): SubscriptionTier;
export declare function subscriptionTierToJSON(object: SubscriptionTier): string;
export interface UserContext {
    userId: string;
    tenantId: string;
    /** alias of tenant_id kept for older producers */
    companyId: string;
    subscriptionTier: SubscriptionTier;
    correlationId: string;
    roles: string[];
    sessionId: string;
}
export declare const UserContext: MessageFns<UserContext>;
type Builtin = Date | Function | Uint8Array | string | number | boolean | undefined;
export type DeepPartial<T> = T extends Builtin ? T : T extends globalThis.Array<infer U> ? globalThis.Array<DeepPartial<U>> : T extends ReadonlyArray<infer U> ? ReadonlyArray<DeepPartial<U>> : T extends {} ? {
    [K in keyof T]?: DeepPartial<T[K]>;
} : Partial<T>;
type KeysOfUnion<T> = T extends T ? keyof T : never;
export type Exact<P, I extends P> = P extends Builtin ? P : P & {
    [K in keyof P]: Exact<P[K], I[K]>;
} & {
    [K in Exclude<keyof I, KeysOfUnion<P>>]: never;
};
export interface MessageFns<T> {
    encode(message: T, writer?: BinaryWriter): BinaryWriter;
    decode(input: BinaryReader | Uint8Array, length?: number): T;
    fromJSON(object: any): T;
    toJSON(message: T): unknown;
    create<I extends Exact<DeepPartial<T>, I>>(base?: I): T;
    fromPartial<I extends Exact<DeepPartial<T>, I>>(object: I): T;
}
export {};
