import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { SubscriptionTier } from "../common/user_context";
export declare const protobufPackage = "aitrading.business";
export declare const protobufFileName = "proto/business/subscriptions.proto";
/** Subscriptions, their tiers, limits and features (the spec's tier table). */
export declare enum SubscriptionStatus {
    SUBSCRIPTION_STATUS_UNSPECIFIED = 0,
    SUBSCRIPTION_STATUS_TRIAL = 1,
    SUBSCRIPTION_STATUS_ACTIVE = 2,
    SUBSCRIPTION_STATUS_PAST_DUE = 3,
    SUBSCRIPTION_STATUS_CANCELLED = 4,
    UNRECOGNIZED = -1
}
export declare function subscriptionStatusFromJSON(object: any): SubscriptionStatus;
export declare function subscriptionStatusToJSON(object: SubscriptionStatus): string;
export interface RateLimits {
    apiCallsPerHour: string;
    websocketConnections: string;
}
export interface ResourceLimits {
    maxConcurrentRequests: string;
    maxDataStorageMb: string;
}
export interface FeatureFlags {
    basicAnalytics: boolean;
    advancedAi: boolean;
    customModels: boolean;
}
export interface TierDefinition {
    tier: SubscriptionTier;
    rateLimits: RateLimits | undefined;
    resourceLimits: ResourceLimits | undefined;
    features: FeatureFlags | undefined;
}
export interface Subscription {
    subscriptionId: string;
    tenantId: string;
    tier: SubscriptionTier;
    status: SubscriptionStatus;
    /** Unix ms */
    startedAt: string;
    /** Unix ms */
    renewsAt: string;
    /** Unix ms; 0 = not cancelled */
    cancelledAt: string;
}
export interface SubscriptionChanged {
    tenantId: string;
    previousTier: SubscriptionTier;
    newTier: SubscriptionTier;
    reason: string;
    /** Unix ms */
    changedAt: string;
}
export declare const RateLimits: MessageFns<RateLimits>;
export declare const ResourceLimits: MessageFns<ResourceLimits>;
export declare const FeatureFlags: MessageFns<FeatureFlags>;
export declare const TierDefinition: MessageFns<TierDefinition>;
export declare const Subscription: MessageFns<Subscription>;
export declare const SubscriptionChanged: MessageFns<SubscriptionChanged>;
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
