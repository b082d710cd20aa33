import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { SubscriptionTier, UserContext } from "../common/user_context";
export declare const protobufPackage = "aitrading.business";
export declare const protobufFileName = "proto/business/user_management.proto";
/**
 * Users and tenants (companies) of the platform.
 *
 * UserContext is publicly re-exported from here, so
 * `from proto.business.user_management_pb2 import UserContext` works as in the spec.
 */
export declare enum UserStatus {
    USER_STATUS_UNSPECIFIED = 0,
    USER_STATUS_ACTIVE = 1,
    USER_STATUS_SUSPENDED = 2,
    USER_STATUS_DELETED = 3,
    UNRECOGNIZED = -1
}
export declare function userStatusFromJSON(object: any): UserStatus;
export declare function userStatusToJSON(object: UserStatus): string;
export interface Tenant {
    tenantId: string;
    name: string;
    subscriptionTier: SubscriptionTier;
    /** Unix ms */
    createdAt: string;
    active: boolean;
}
export interface User {
    userId: string;
    tenantId: string;
    email: string;
    displayName: string;
    roles: string[];
    status: UserStatus;
    /** Unix ms */
    createdAt: string;
    /** Unix ms */
    lastLoginAt: string;
}
/** A change to a user, published as MessageEnvelope{message_type: "user_event"}. */
export interface UserEvent {
    eventType: UserEvent_EventType;
    user: User | undefined;
    /** who made the change */
    actor: UserContext | undefined;
    /** Unix ms */
    occurredAt: string;
}
export declare enum UserEvent_EventType {
    EVENT_TYPE_UNSPECIFIED = 0,
    EVENT_TYPE_CREATED = 1,
    EVENT_TYPE_UPDATED = 2,
    EVENT_TYPE_SUSPENDED = 3,
    EVENT_TYPE_DELETED = 4,
    EVENT_TYPE_LOGGED_IN = 5,
    UNRECOGNIZED = -1
}
export declare function userEvent_EventTypeFromJSON(object: any): UserEvent_EventType;
export declare function userEvent_EventTypeToJSON(object: UserEvent_EventType): string;
export declare const Tenant: MessageFns<Tenant>;
export declare const User: MessageFns<User>;
export declare const UserEvent: MessageFns<UserEvent>;
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
